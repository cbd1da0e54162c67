"""Redis work written once for both clients: the commands a step queues on a pipeline, and what it makes of the replies.

History positions and replays, presence entries, online state and the connection quota are each one round trip.
The gevent paths run them with the process's synchronous redis-py client (``run``); the asyncio driver runs the very
same ``Batch`` with its redis.asyncio client (``ws4redis.runtime.asyncio.redis_client.run``). A ``Batch`` never does I/O
itself, so neither side can drift from the other: only the ``execute()`` differs, blocking or awaited.

A pipeline (``transaction=False``) is what both clients and every topology share: one Redis, the master a Sentinel
names, and a Redis Cluster, whose pipeline sends each command to the shard owning its keys.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import redis
import redis.cluster

__all__ = ["Batch", "run", "sharded"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Batch(Generic[T]):
    """One round trip: ``queue(pipe)`` adds its commands, ``parse(replies)`` is its result (called once Redis
    answered, on the caller's thread or loop). ``failed(exc)``, when given, is the result of a Redis or network
    failure instead of raising it; ``raise_on_error=False`` hands a failed command's exception to ``parse``.

    ``single``: ``queue`` sends one command on the client itself and returns its reply (the asyncio client: an
    awaitable of it), which ``parse`` gets as ``[reply]``: no pipeline to build for one command."""

    queue: Callable[[Any], Any]
    parse: Callable[[list[Any]], T]
    failed: Callable[[Exception], T] | None = None
    raise_on_error: bool = True
    single: bool = False


def run(client: redis.Redis, batch: Batch[T]) -> T:
    """Run ``batch`` with the synchronous client (gevent: blocks only the calling greenlet)."""
    try:
        if batch.single:
            replies = [batch.queue(client)]
        else:
            pipe = client.pipeline(transaction=False)
            batch.queue(pipe)
            replies = pipe.execute(raise_on_error=batch.raise_on_error)
    except (redis.RedisError, OSError) as exc:
        if batch.failed is None:
            raise
        return batch.failed(exc)
    return batch.parse(replies)


def sharded(pipe: Any) -> bool:
    """Whether ``pipe`` is a Redis Cluster pipeline (sync or asyncio): publish there with ``SPUBLISH``, so only the
    shard owning the channel's slot carries it. The asyncio module is only looked at once something imported it."""
    if isinstance(pipe, redis.cluster.ClusterPipeline):
        return True
    aio = sys.modules.get("redis.asyncio.cluster")
    return aio is not None and isinstance(pipe, aio.ClusterPipeline)
