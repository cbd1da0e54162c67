"""The Django part of websocket handshakes under gevent, run by a few long-lived greenlets (``run``).

Why: once gevent has monkey-patched ``threading``, Django's database connections belong to the greenlet that opened
them. A websocket request's greenlet opened its own connection for the handshake (the project's middleware, the
user lookup, the channel policy, the connect hook), closed at ``request_finished`` or gone with the greenlet: every
handshake paid for a new connection, ``CONN_MAX_AGE`` could never reuse one, and a reconnect storm opened as many
connections at once as handshakes were in flight (uWSGI's ``--gevent 1000``: up to 1000 per worker, past
PostgreSQL's ``max_connections``). Here at most ``WS4REDIS_HANDSHAKE_CONCURRENCY`` greenlets per worker run that
part, one job after another each: a worker opens at most that many database connections for handshakes, keeps them
under ``CONN_MAX_AGE`` like any Django thread serving requests, and a storm queues instead of piling onto the
database.
The rest of the websocket (subscribing, the upgrade, the connection loop) stays in the request's greenlet.

One pool per gevent hub, so per process (``_writer()`` of ``ws4redis.runtime.gevent.connection`` keeps its writer
the same way), and only in the main thread's: under Django's threaded server (``ws4redis.servers.threaded``) each
websocket has a thread and a loop of its own, whose connections are that thread's anyway, so it calls directly.
(Under ASGI the handshake runs in Django's one sync thread, where ``CONN_MAX_AGE`` works without this.)

Cost: about 5 µs of CPU per handshake for the two greenlet switches, against about 300 µs saved per handshake by a
kept connection (SQLite, session and auth middleware, measured in-process).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import gevent.event
import gevent.queue

from ws4redis import settings
from ws4redis.integration.hooks import KEEPS_DB_CONNECTIONS

__all__ = ["WORKER_MARK", "HandshakePool", "run"]

T = TypeVar("T")

#: The attribute set on a pool's greenlets: code that closes a greenlet's database connections because the greenlet
#: may live for hours (``ws4redis.integration.hooks.close_db_connections``) leaves theirs to ``CONN_MAX_AGE``.
WORKER_MARK = KEEPS_DB_CONNECTIONS

_Job = tuple[Callable[..., Any], tuple[Any, ...], gevent.event.AsyncResult]


class HandshakePool:
    """At most ``size`` greenlets taking jobs from one queue; spawned lazily, never ended while the process lives.

    A new worker is spawned only when a job is queued while every existing worker has one (queued or running) and
    fewer than ``size`` exist, so a worker that serves one handshake at a time stays alone. A job's exception goes
    back to its caller and the worker takes the next job.
    """

    __slots__ = ("_jobs", "_pending", "_workers", "size")

    def __init__(self, size: int) -> None:
        self.size = size  # may change while running (a changed setting): it bounds the spawning of new workers
        self._jobs: gevent.queue.Queue[_Job] = gevent.queue.Queue()
        self._pending = 0  # jobs queued or running
        self._workers = 0

    @property
    def workers(self) -> int:
        """How many worker greenlets exist."""
        return self._workers

    def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker; waits for its result or re-raises its exception in the caller."""
        result: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._jobs.put((func, args, result))
        self._pending += 1
        if self._pending > self._workers and self._workers < self.size:
            self._workers += 1
            setattr(gevent.spawn(self._work), WORKER_MARK, True)
        failure, value = result.get()
        if failure is not None:
            raise failure  # with the worker's frames in its traceback, then this one's
        return value  # type: ignore[no-any-return]

    def _work(self) -> None:
        # An outcome is (exception, None) or (None, value): an exception travels as a value, with its own
        # traceback, rather than through AsyncResult.set_exception, which pickles the traceback (tblib) on every
        # refusal of a storm.
        try:
            while True:
                func, args, result = self._jobs.get()
                try:
                    result.set((None, func(*args)))
                except gevent.GreenletExit as exc:  # this worker is killed (the process ends): its caller is told
                    result.set((exc, None))
                    raise
                except BaseException as exc:  # every failure is the caller's; the worker goes on
                    result.set((exc, None))
                finally:
                    self._pending -= 1
                    del func, args, result  # an idle worker keeps nothing of the request it served
        finally:
            self._workers -= 1


def run(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` through this process's pool (``WS4REDIS_HANDSHAKE_CONCURRENCY``), or directly when that is 0
    or outside the main thread."""
    size = int(settings.get("WS4REDIS_HANDSHAKE_CONCURRENCY") or 0)
    hub = gevent.get_hub()
    if size <= 0 or not hub.main_hub or getattr(gevent.getcurrent(), WORKER_MARK, False):
        return func(*args)  # (a job that asks the pool again must not wait for a worker: it is one)
    pool: HandshakePool | None = getattr(hub, "ws4redis_handshakes", None)
    if pool is None:
        pool = hub.ws4redis_handshakes = HandshakePool(size)
    pool.size = size
    return pool.run(func, *args)
