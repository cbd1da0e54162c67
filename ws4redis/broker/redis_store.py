"""``RedisMessage``, ``SELF`` and ``RedisStore``: the original's public names, and the process's Redis pool.

The pool is created on first use in each process (never at import, never inherited across a fork: redis-py's pool
checks its pid), and retries with jittered exponential backoff come from redis-py itself.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

from ws4redis import metrics, settings
from ws4redis.broker import history
from ws4redis.broker.audience import SELF, channel_names, prefix_of
from ws4redis.broker.redis_batch import sharded
from ws4redis.core import wire

__all__ = ["SELF", "RedisMessage", "RedisStore", "as_message", "get_connection", "publish_pipeline"]

logger = logging.getLogger("ws4redis.redis_store")  # its name before the move: logging configurations keep it

_pool_lock = threading.Lock()
_pool: tuple[int, redis.ConnectionPool, redis.Redis] | None = None  # (pid, pool, its one client)
_cluster: tuple[int, redis.Redis] | None = None  # Redis Cluster: the process's RedisCluster instead of a pool


def redis_kwargs() -> dict[str, Any]:
    """Connection arguments for every ws4redis connection: the setting plus retries and health checks."""
    kwargs = settings.connection_kwargs()
    kwargs.setdefault("retry", Retry(EqualJitterBackoff(cap=2.0, base=0.05), 3))
    kwargs.setdefault("retry_on_error", [redis.ConnectionError, redis.TimeoutError])
    kwargs.setdefault("socket_connect_timeout", 5)
    return kwargs


def sentinel_parts(
    kwargs: dict[str, Any], ssl_class: type[Any]
) -> tuple[list[tuple[str, int]], str, dict[str, Any]] | None:
    """With ``sentinels`` in ``kwargs`` (removed from it, with the other Sentinel keys): the sentinels' addresses, the
    service and the sentinels' own connection options, for the sync and the asyncio Sentinel alike (``ssl_class``:
    that client's Sentinel-managed TLS connection class, set on ``kwargs`` when ``ssl`` was asked for)."""
    sentinels = kwargs.pop("sentinels", None)
    if sentinels is None:
        return None
    service = str(kwargs.pop("service_name", "mymaster"))
    sentinel_kwargs = dict(kwargs.pop("sentinel_kwargs", None) or {})
    sentinel_kwargs.setdefault("socket_timeout", 1.0)  # a dead sentinel is skipped quickly, not waited for
    sentinel_kwargs.setdefault("socket_connect_timeout", 1.0)
    for key in ("host", "port", "unix_socket_path"):
        kwargs.pop(key, None)
    if kwargs.pop("ssl", False):
        kwargs["connection_class"] = ssl_class
    return [(str(host), int(port)) for host, port in sentinels], service, sentinel_kwargs


def _sentinel(kwargs: dict[str, Any]) -> tuple[redis.sentinel.Sentinel, str] | None:
    """With ``sentinels`` in ``kwargs`` (removed from it, with the other Sentinel keys): the Sentinel and service.

    Every connection then asks the sentinels for the current master when it connects, so the hub's reconnect and
    the publishing pool's retries follow a failover without any code of ours watching the sentinels.
    """
    parts = sentinel_parts(kwargs, redis.sentinel.SentinelManagedSSLConnection)
    if parts is None:
        return None
    addresses, service, sentinel_kwargs = parts
    return redis.sentinel.Sentinel(addresses, sentinel_kwargs=sentinel_kwargs), service  # type: ignore[no-untyped-call]


def new_client(**overrides: Any) -> redis.Redis:
    """A client with a connection pool of its own (the hub's pub/sub link); ``overrides`` change connection kwargs."""
    kwargs = redis_kwargs()
    kwargs.update(overrides)
    if "cluster_nodes" in kwargs:  # Redis Cluster: a RedisCluster; the hub reads it through ws4redis.broker.cluster
        from ws4redis.broker.cluster import cluster_client

        return cluster_client(kwargs)  # type: ignore[return-value]
    sentinel = _sentinel(kwargs)
    if sentinel is not None:
        client: redis.Redis = sentinel[0].master_for(sentinel[1], **kwargs)  # type: ignore[no-untyped-call]
        return client
    return redis.Redis(**kwargs)


def get_connection() -> redis.Redis:
    """A client on this process's pool (created lazily, recreated after a fork).

    The pool is built outside ``_pool_lock``: where ws4redis was imported before gevent patched ``threading``
    (``runwebsocket``) that lock is a thread's lock, and building redis-py's pool yields to other greenlets (its
    queue's condition takes a gevent lock); a second greenlet waiting on the thread's lock then blocked the whole
    worker, so the first handshakes arriving together after a start hung it for good (issue 22). Two callers may
    both build one; the lock keeps the first and the other is dropped.
    """
    global _pool, _cluster
    pid = os.getpid()
    current = _current(pid)
    if current is not None:
        return current
    if "cluster_nodes" in settings.connection_kwargs():
        cluster = new_client()  # one RedisCluster per process: it pools per node itself
        with _pool_lock:
            if _cluster is None or _cluster[0] != pid:
                _cluster = (pid, cluster)
                return cluster
            kept = _cluster[1]
        cluster.close()
        return kept
    kwargs = redis_kwargs()
    pool_class: type[redis.ConnectionPool] = redis.BlockingConnectionPool
    kwargs["timeout"] = 20  # seconds BlockingConnectionPool waits for a free connection
    sentinel = _sentinel(kwargs)
    if sentinel is not None:
        # The master is looked up on every connect; non-blocking: a full pool raises instead of waiting.
        kwargs.pop("timeout")
        kwargs.update(service_name=sentinel[1], sentinel_manager=sentinel[0])
        pool_class = redis.sentinel.SentinelConnectionPool
    elif "unix_socket_path" in kwargs:
        kwargs["path"] = kwargs.pop("unix_socket_path")
        kwargs["connection_class"] = redis.UnixDomainSocketConnection
    elif kwargs.pop("ssl", False):
        kwargs["connection_class"] = redis.SSLConnection
    pool = pool_class(max_connections=int(settings.get("WS4REDIS_POOL_SIZE")), **kwargs)
    # One client per process: a client per caller would cost every websocket ~13 KB (measured in bench/).
    client = redis.Redis(connection_pool=pool)
    with _pool_lock:
        if _pool is None or _pool[0] != pid:
            _pool = (pid, pool, client)
        return _pool[2]


def _current(pid: int) -> redis.Redis | None:
    """This process's client if it has one already."""
    cluster, pool = _cluster, _pool
    if cluster is not None and cluster[0] == pid:
        return cluster[1]
    if pool is not None and pool[0] == pid:
        return pool[2]
    return None


def reset_pool() -> None:
    """Forget this process's pool (tests that restart Redis on a new port, and settings changes)."""
    global _pool, _cluster
    with _pool_lock:
        if _pool is not None:
            _pool[1].disconnect()
        _pool = None
        if _cluster is not None:
            _cluster[1].close()
        _cluster = None


class RedisMessage(bytes):
    """A message as bytes; ``str`` is encoded as UTF-8. The heartbeat string yields ``None`` (it is never published),
    and so does a value that is no message at all (``RedisMessage(5)``), as in the original."""

    def __new__(cls, value: str | bytes | bytearray | memoryview | list[Any]) -> RedisMessage | None:  # type: ignore[misc]
        if isinstance(value, list):  # a raw pub/sub reply, as the original accepted
            if len(value) < 3 or value[0] not in (b"message", "message"):
                return None
            value = value[2]
        if isinstance(value, str):
            value = value.encode()
        elif isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        elif not isinstance(value, bytes):
            return None
        heartbeat = settings.get("WS4REDIS_HEARTBEAT")
        if heartbeat is not None and value == heartbeat.encode():
            return None
        return super().__new__(cls, value)


def as_message(message: Any) -> RedisMessage | None:
    """``message`` for publishing: ``None`` for the heartbeat string, ``ValueError`` for what is no message (the
    original's error), so that a wrong argument is never published as nothing without a word."""
    if isinstance(message, RedisMessage):
        return message
    if not isinstance(message, (str, bytes, bytearray, memoryview)):
        raise ValueError(f"message object is not of type RedisMessage, str or bytes: {type(message).__name__}")
    return RedisMessage(message)


def publish_pipeline(
    pipe: Any, channels: list[str], message: bytes, expire: int, *, text: bool | None = None
) -> list[int]:
    """Queue on ``pipe`` a PUBLISH to each channel and, when ``expire`` > 0, the kept last message.

    A channel whose facility keeps history (``WS4REDIS_HISTORY``) gets one atomic script instead: XADD to its stream,
    PUBLISH with the stream id, kept message (``ws4redis.broker.history``). Returns how many replies each channel adds
    to
    the pipeline, its first being the PUBLISH count, so callers can pick the counts out of ``execute()``.

    What goes out on pub/sub is ``message`` in ws4redis' envelope (``ws4redis.core.wire``): sent to websockets as a text
    frame when ``text`` (and valid UTF-8: bytes that are not go out binary rather than be skipped by every hub),
    else binary; ``None`` decides by content, as django-websocket-redis did. The kept message is the payload alone, as
    the original kept it.
    """
    if text is not False:
        text = wire.is_text(message)
    steps: list[int] = []
    cluster = sharded(pipe)
    enveloped: bytes | None = None
    for channel in channels:
        window = history.window_for(channel)
        if window is not None:
            history.queue_publish(pipe, channel, message, expire, window, text=text)
            steps.append(1)
            continue
        if enveloped is None:
            enveloped = wire.encode(message, text=text)
        if cluster:
            pipe.spublish(channel, enveloped)  # Redis Cluster: only the shard owning the channel's slot
        else:
            pipe.publish(channel, enveloped)
        if expire > 0:
            pipe.set(channel, message, ex=expire)
        steps.append(2 if expire > 0 else 1)
    return steps


class RedisStore:
    """The original's base of publisher and subscriber: a set of channels to publish on, and one connection.

    ``_publishers`` is a ``set`` of channel names, as in the original (its tests and subclasses touch it);
    ``_expire`` is ``WS4REDIS_EXPIRE`` unless set on the instance.
    """

    def __init__(self, connection: redis.Redis | None = None) -> None:
        self._connection = connection if connection is not None else get_connection()
        self._publishers: set[str] = set()
        self._expire_override: int | None = None

    @property
    def connection(self) -> redis.Redis:
        """The Redis client this store publishes through (to queue several stores' publishes on one pipeline)."""
        return self._connection

    @property
    def _expire(self) -> int:
        if self._expire_override is not None:
            return self._expire_override
        return int(settings.get("WS4REDIS_EXPIRE") or 0)

    @_expire.setter
    def _expire(self, value: int) -> None:
        self._expire_override = int(value)

    @staticmethod
    def get_prefix() -> str:
        return prefix_of(settings.get("WS4REDIS_PREFIX"))

    def _get_message_channels(
        self,
        request: Any = None,
        facility: str = "{facility}",
        broadcast: bool = False,
        groups: Any = (),
        users: Any = (),
        sessions: Any = (),
    ) -> list[str]:
        return channel_names(
            prefix=settings.get("WS4REDIS_PREFIX"),
            facility=facility,
            request=request,
            broadcast=broadcast,
            groups=groups,
            users=users,
            sessions=sessions,
        )

    def publish_message(self, message: str | bytes | None, expire: int | None = None) -> int:
        """Publish ``message`` to every channel of this store in one round trip.

        Returns how many subscribed processes (hubs) received it, summed over the channels (the original returned
        ``None``).

        ``str`` and ``bytes`` are accepted (the original refused ``str`` although its docs showed one); anything else
        raises ``ValueError``, as in the original. ``None`` and the heartbeat string publish nothing.
        """
        if message is None:
            return 0
        wrapped = as_message(message)
        if wrapped is None:
            return 0
        channels = sorted(self._publishers)
        if not channels:
            return 0
        expire = self._expire if expire is None else int(expire)
        if (
            len(channels) == 1
            and expire <= 0
            and history.window_for(channels[0]) is None
            and not isinstance(self._connection, redis.cluster.RedisCluster)
        ):
            # The common case of a busy publisher (one channel, nothing kept): a plain PUBLISH, no pipeline.
            metrics.PUBLISHED_BY_SERVER.inc()
            payload = bytes(wrapped)
            return int(self._connection.publish(channels[0], wire.encode(payload, text=wire.is_text(payload))))
        return self._publish_through(self._connection.pipeline(transaction=False), channels, wrapped, expire)

    def _publish_through(self, pipe: Any, channels: list[str], message: bytes, expire: int) -> int:
        """Publish on ``pipe`` and execute it; the receivers summed over ``channels``."""
        steps = publish_pipeline(pipe, channels, bytes(message), expire)
        results = pipe.execute()
        metrics.PUBLISHED_BY_SERVER.inc(len(channels))
        total, index = 0, 0
        for step in steps:
            total += int(results[index])
            index += step
        return total
