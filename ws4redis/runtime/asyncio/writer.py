"""The asyncio loop's writer of idle sockets, and the one-waiter wake-up a socket's task parks on.

Apart from the connection because it is the loop's, not one socket's: one ``Writer`` per event loop writes the queues
of every parked socket from a single task (a fan-out is N sends in one task, not N task wake-ups), and hands a send
the server suspended back to the socket's own task (``finish_send``). ``Wake`` is what keeps a parked socket small:
an ``asyncio.Event`` without its deque of waiters. Both only schedule and send; what to send is the session's.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from ws4redis.runtime.dispatch import write_idle

if TYPE_CHECKING:
    from ws4redis.runtime.asyncio.connection import AsyncioConnection

__all__ = ["Wake", "Writer", "finish_send", "writer_for"]

# the driver's name before the split: logging configurations keep it
logger = logging.getLogger("ws4redis.runtime.asyncio_driver")


class Wake:
    """``asyncio.Event`` for the one task that waits on it, without the Event's deque of waiters (most of an idle
    socket is its bookkeeping)."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        waiter = self.waiter()
        if waiter is not None:
            try:
                await waiter
            finally:
                self._waiter = None

    def waiter(self) -> asyncio.Future[None] | None:
        """The future to await until ``set`` (``None`` if set already): awaited in the waiter's own frame, so that
        a parked socket holds no frame of ``wait`` (bench/, S2). Its owner sets ``_waiter`` back to ``None``."""
        if self._set:
            return None
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter


class Writer:
    """Writes the queues of idle sockets from the event loop, without waking their tasks.

    ``deliver`` runs in the hub's reader, one message at a time. A socket whose task is parked (waiting for a wake-up,
    in no send and no round) registers here when its queue becomes non-empty, and one task per loop iteration then
    writes each registered queue: a send to a writable transport does not suspend (uvicorn, hypercorn), so a fan-out
    to N idle sockets is N sends in one task, not N task wake-ups, each with its timer (the wake-ups were most of a
    fan-out's latency on uvicorn, bench/). A send that does suspend (the client stopped reading) is handed to the
    socket's own task, which finishes it under its send timeout; the writer goes on with the others.

    A server whose sends never complete without suspending (granian: each is a future of its Rust runtime) would
    only add a step to every send: once the first ``_PROBE`` sends begun here all suspended, ``off`` is set and the
    sockets of this loop wake their own tasks again.
    """

    __slots__ = ("_loop", "_pending", "_tasks", "off", "sent", "suspended")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[AsyncioConnection] = []
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self.off = False
        self.sent = 0  # sends begun here that completed without suspending
        self.suspended = 0  # sends begun here that the server suspended

    def suspends(self) -> None:
        """A send begun here suspended: if none ever completed at once, this server's sends always suspend."""
        self.suspended += 1
        if not self.sent and self.suspended >= _PROBE and not self.off:
            self.off = True
            logger.info("ws4redis: this ASGI server's sends always suspend; sockets are written by their own tasks")

    def add(self, connection: AsyncioConnection) -> None:
        if not self._pending:
            # A task, not a loop callback: a server's send may expect to run in one (asyncio.current_task()).
            task = self._loop.create_task(self._write())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._pending.append(connection)

    async def _write(self) -> None:
        pending, self._pending = self._pending, []
        write_idle(pending, logger)


_PROBE = 64  # sends that must all suspend before Writer gives up on a server
_writers: dict[asyncio.AbstractEventLoop, Writer] = {}


def writer_for(loop: asyncio.AbstractEventLoop) -> Writer:
    """The writer of ``loop`` (one per event loop; a closed loop's is dropped with the next new one)."""
    writer = _writers.get(loop)
    if writer is None:
        for old in [old for old in _writers if old.is_closed()]:
            del _writers[old]
        writer = _writers[loop] = Writer(loop)
    return writer


@types.coroutine
def finish_send(step: Iterator[Any], waiting: Any) -> Generator[Any, Any, None]:
    """Await the rest of a send that ``Writer`` began and the server suspended (``waiting``: what it yielded):
    the socket's task drives it on from there, a cancellation included."""
    while True:
        try:
            yield waiting
        except BaseException as exc:
            try:
                waiting = step.throw(exc)  # type: ignore[attr-defined]
            except StopIteration:
                return
            continue
        try:
            waiting = next(step)
        except StopIteration:
            return
