"""The asyncio driver's Redis client: one redis.asyncio client per process and event loop, for the configured topology.

Everything a socket asks of Redis besides pub/sub (the connection quota, kept messages, client publishes, history
positions and replays, presence and online state) is awaited here, on the loop: no worker thread per call, so a
burst of sockets opening at once is not queued behind the few threads of the default executor, and a slow Redis
reply holds no thread. The commands and the reading of their replies are the gevent paths' own
(``ws4redis.broker.redis_batch.Batch``s of ``ws4redis.history``, ``presence``, ``presence_signals`` and ``quota``;
``ws4redis.redis_store.publish_pipeline``): only the ``execute()`` is awaited instead of blocking.

The client follows ``WS4REDIS_CONNECTION`` as the synchronous pool does (``ws4redis.redis_store``): one Redis (URL or
keyword arguments, TLS, a Unix socket), the master a Sentinel names (asked again on every new connection, so a
failover is followed by redis-py's retries), or a Redis Cluster (``RedisCluster``: each command goes to the shard
owning its keys, kept messages of several slots are read per shard). It is made on first use on a loop and closed by
``close`` (the ASGI lifespan's shutdown, with the hub); its connections are named ``ws4redis-aio:<host>:<pid>``. At
most ``WS4REDIS_POOL_SIZE`` calls of a loop are in flight at once; the next ones wait for a free place, as callers of
the blocking synchronous pool wait, and never fail for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff

from ws4redis import settings
from ws4redis.broker.redis_batch import Batch
from ws4redis.broker.redis_store import publish_pipeline, sentinel_parts

__all__ = ["client_name", "close", "kept", "publish", "run"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class _Client:
    """One loop's client, the sentinels it asks (to close them too), and the bound on calls in flight."""

    redis: Any  # redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster
    sentinel: redis.asyncio.sentinel.Sentinel | None
    limit: asyncio.Semaphore
    cluster: bool

    async def aclose(self) -> None:
        await self.redis.aclose()
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                await client.aclose()


_clients: dict[int, tuple[int, asyncio.AbstractEventLoop, _Client]] = {}  # id(loop) -> (pid, loop, its client)


def _kwargs() -> dict[str, Any]:
    """The setting as redis.asyncio keyword arguments, with the synchronous pool's retries and connect timeout."""
    kwargs = settings.connection_kwargs()
    if not isinstance(kwargs.get("retry"), Retry):  # redis-py's synchronous Retry cannot drive an asyncio client
        kwargs["retry"] = Retry(EqualJitterBackoff(cap=2.0, base=0.05), 3)
    kwargs.setdefault("retry_on_error", [redis.ConnectionError, redis.TimeoutError])
    kwargs.setdefault("socket_connect_timeout", 5)
    return kwargs


def client_name() -> str:
    """What this process's connections are called in ``CLIENT LIST`` (as its hub's are ``ws4redis-hub:...``)."""
    return f"ws4redis-aio:{socket.gethostname()}:{os.getpid()}"


def _connect() -> _Client:
    kwargs = _kwargs()
    kwargs.setdefault("client_name", client_name())
    size = int(settings.get("WS4REDIS_POOL_SIZE"))
    limit = asyncio.Semaphore(size)
    if "cluster_nodes" in kwargs:
        nodes = [redis.asyncio.cluster.ClusterNode(str(host), int(port)) for host, port in kwargs.pop("cluster_nodes")]
        for key in ("host", "port", "db", "unix_socket_path", "retry_on_error"):
            kwargs.pop(key, None)  # a cluster has database 0 only; its retries are its own
        kwargs.setdefault("socket_timeout", None)  # as the synchronous cluster client: a long replay is no failure
        cluster = redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, max_connections=size, **kwargs)
        return _Client(cluster, None, limit, cluster=True)
    parts = sentinel_parts(kwargs, redis.asyncio.sentinel.SentinelManagedSSLConnection)
    if parts is not None:
        addresses, service, sentinel_kwargs = parts
        sentinel = redis.asyncio.sentinel.Sentinel(addresses, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        master = sentinel.master_for(service, max_connections=size, **kwargs)
        return _Client(master, sentinel, limit, cluster=False)
    return _Client(redis.asyncio.Redis(max_connections=size, **kwargs), None, limit, cluster=False)


def _client() -> _Client:
    """The running loop's client, made on first use in this process (never inherited across a fork)."""
    loop = asyncio.get_running_loop()
    entry = _clients.get(id(loop))
    if entry is None or entry[0] != os.getpid() or entry[1] is not loop:
        for key, (_, other, _) in list(_clients.items()):
            if other.is_closed():
                del _clients[key]
        entry = _clients[id(loop)] = (os.getpid(), loop, _connect())
    return entry[2]


async def run(batch: Batch[T]) -> T:
    """Run ``batch`` (one round trip) on this loop's client; as ``ws4redis.broker.redis_batch.run`` with the sync
    client."""
    client = _client()
    try:
        async with client.limit:
            if batch.single:
                replies = [await batch.queue(client.redis)]
            else:
                pipe = client.redis.pipeline(transaction=False)
                batch.queue(pipe)
                replies = await pipe.execute(raise_on_error=batch.raise_on_error)
    except (redis.RedisError, OSError) as exc:
        if batch.failed is None:
            raise
        return batch.failed(exc)
    return batch.parse(replies)


async def kept(channels: list[str]) -> list[bytes | None]:
    """The kept last message of each of ``channels`` (``WS4REDIS_EXPIRE``), in one round trip (one per shard in a
    cluster: each kept message is independent, so per-shard reads lose nothing)."""
    client = _client()
    async with client.limit:
        if client.cluster:
            values = await client.redis.mget_nonatomic(channels)
        else:
            values = await client.redis.mget(channels)
    return list(values)


async def publish(channels: list[str], data: bytes, text: bool, expire: int) -> None:
    """A client's publish, as ``RedisPublisher`` does it (``publish_pipeline``: history, kept message, sharded)."""
    client = _client()
    async with client.limit:
        pipe = client.redis.pipeline(transaction=False)
        publish_pipeline(pipe, channels, data, expire, text=text)
        await pipe.execute()


async def close() -> None:
    """Close and forget the running loop's client (the lifespan's shutdown, tests); the next call makes a new one."""
    entry = _clients.pop(id(asyncio.get_running_loop()), None)
    if entry is not None and entry[0] == os.getpid():
        try:
            await entry[2].aclose()
        except (redis.RedisError, OSError) as exc:
            logger.debug("ws4redis: closing the asyncio Redis client: %r", exc)
