"""Every ws4redis setting with its default, read lazily from ``django.conf.settings``.

The original read settings once at import, so ``override_settings`` had no effect. Here each read goes to
``django.conf.settings``; ``ws4redis.settings.WS4REDIS_EXPIRE`` (the original's module attribute) still works
through the module ``__getattr__``. Dotted-path hooks are resolved with ``import_string`` and a bad path raises
``ImproperlyConfigured`` instead of being swallowed.

See ``docs/settings.md`` for what each setting means.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

__all__ = ["DEFAULTS", "connection_kwargs", "for_channel", "get", "hook"]

DEFAULTS: dict[str, Any] = {
    "WEBSOCKET_URL": "/ws/",
    "WS4REDIS_CONNECTION": {"host": "localhost", "port": 6379, "db": 0, "password": None},
    "WS4REDIS_EXPIRE": 3600,
    "WS4REDIS_PREFIX": None,
    "WS4REDIS_SUBSCRIBER": "ws4redis.subscriber.RedisSubscriber",
    "WS4REDIS_HEARTBEAT": None,
    "WS4REDIS_ALLOWED_CHANNELS": None,
    "WS4REDIS_PROCESS_REQUEST": None,
    # New in ws4redis.
    "WS4REDIS_ALLOWED_ORIGINS": None,  # None: the hosts of ALLOWED_HOSTS; or a list of origins, "*" for any
    "WS4REDIS_POLICY": "strict",  # or "permissive": the original's rules for anonymous clients
    "WS4REDIS_MAX_FACILITY_LENGTH": 100,
    "WS4REDIS_MAX_MESSAGE_SIZE": 64 * 1024,  # bytes a client may send in one message
    "WS4REDIS_QUEUE_BYTES": 1024 * 1024,  # bytes queued for one slow socket before the slow-consumer policy applies
    "WS4REDIS_POOL_SIZE": 32,  # Redis connections a process keeps for publishing
    "WS4REDIS_SUBSCRIBE_TIMEOUT": 5.0,  # seconds to wait for Redis to confirm a subscription before refusing
    "WS4REDIS_WAKE_INTERVAL": 10.0,  # seconds between idle wake-ups (lets uWSGI send its pings)
    "WS4REDIS_INSTANCE": None,  # this instance's name for `manage.py ws4redis_drain --instance` (None: host name)
    "WS4REDIS_PING_INTERVAL": 20.0,  # gevent server: seconds of peer silence before it is pinged
    "WS4REDIS_PING_TIMEOUT": 20.0,  # gevent server: seconds to answer that ping before the socket is dropped
    # {"facility" or pattern: {"size": N, "ttl": seconds}}: Redis Streams (ws4redis.broker.history)
    "WS4REDIS_HISTORY": {},
    "WS4REDIS_RESUME_WAIT": 2.0,  # seconds a v2 socket with history holds live messages until the client's resume
    "WS4REDIS_PRESENCE": {},  # {"facility" or pattern: {"ttl": seconds, "events": bool}} (ws4redis.broker.presence)
    # seconds without any socket before user_offline (ws4redis.broker.presence_signals)
    "WS4REDIS_PRESENCE_GRACE": 10.0,
    "WS4REDIS_PRESENCE_SWEEP": 1.0,  # seconds between a hub's sweeps for dead workers' sockets and due offlines
    "WS4REDIS_PRESENCE_SIGNAL_QUEUE": 1000,  # presence signals a process may have waiting for their receivers
    # {"facility" or "*": {"connect"|"message"|"disconnect": "dotted.path"}} (ws4redis.integration.hooks)
    "WS4REDIS_HOOKS": {},
    "WS4REDIS_HOOK_TIMEOUT": 5.0,  # seconds a hook may take before its socket is closed (1011)
    "WS4REDIS_SLOW_CONSUMER": "close",  # or "drop-oldest": what happens when WS4REDIS_QUEUE_BYTES is exceeded
    "WS4REDIS_PUBLISH_RATE": 20.0,  # messages per second a client may publish through its socket (None: no limit)
    "WS4REDIS_PUBLISH_BURST": 40,  # messages a client may publish at once before the rate applies
    "WS4REDIS_CONTROL_RATE": 10.0,  # pings, pongs and non-publish requests per second and socket (None: no limit)
    "WS4REDIS_CONTROL_BURST": 50,  # of those, how many a client may send at once before the rate applies
    "WS4REDIS_MAX_CONNECTIONS_PER_USER": None,  # open sockets per user across all workers (None: no limit)
    "WS4REDIS_MAX_SUBSCRIPTIONS": 100,  # channels one socket may listen to (a user in many groups)
    # facility names/patterns needing a signed subscription (ws4redis.integration.streams)
    "WS4REDIS_SIGNED_STREAMS": (),
    # gevent: greenlets per worker running handshakes' Django part, so database connections (0: each in its request's)
    "WS4REDIS_HANDSHAKE_CONCURRENCY": 64,
}


def get(name: str) -> Any:
    """The current value of a setting, or its default.

    A value assigned to this module (``ws4redis.settings.WS4REDIS_ALLOWED_CHANNELS = None``, as 0.6's tests did) wins
    until it is deleted again.
    """
    if name in _assigned:
        return _assigned[name]
    try:
        default = DEFAULTS[name]
    except KeyError:
        raise AttributeError(f"ws4redis has no setting {name!r}") from None
    return getattr(django_settings, name, default)


def hook(name: str) -> Callable[..., Any] | None:
    """A callable setting given as a callable or a dotted path; ``None`` when unset.

    A path that does not import raises ``ImproperlyConfigured`` naming the setting, so a typo fails at the first
    connection instead of silently disabling the hook (the original's behaviour).
    """
    value = get(name)
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    try:
        return import_string(value)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise ImproperlyConfigured(f"{name} = {value!r} does not import: {exc}") from exc


def for_channel(name: str, channel: str) -> Any:
    """The entry of a per-facility setting (``WS4REDIS_HISTORY``, ``WS4REDIS_PRESENCE``) for ``channel``, or ``None``.

    The facility is the last ``:``-separated part of the channel name (a facility never contains ``:``). An exact
    name wins over patterns; patterns (``fnmatch``) are tried in the setting's order.
    """
    config = get(name) or {}
    if not config:
        return None
    facility = channel.rpartition(":")[2]
    entry = config.get(facility)
    if entry is None:
        entry = next((value for pattern, value in config.items() if fnmatch.fnmatchcase(facility, pattern)), None)
    return entry


def connection_kwargs() -> dict[str, Any]:
    """``WS4REDIS_CONNECTION`` normalised to redis-py keyword arguments.

    Accepts the original's dict (``unix_socket_path`` and ``ssl`` included) or a ``redis://``, ``rediss://`` or
    ``unix://`` URL. Normalising here keeps every caller on one shape.

    Redis Sentinel: a dict with ``sentinels`` (``[(host, port), ...]``) and ``service_name``, or a
    ``redis+sentinel://[:password@]host:port,host:port/service_name[/db]`` URL (``rediss+sentinel://`` for TLS;
    ``?sentinel_password=`` when the sentinels require one). ``ws4redis.broker.redis_store`` turns these keys into
    redis-py's ``Sentinel.master_for``.

    Redis Cluster: a dict with ``cluster_nodes`` (``[(host, port), ...]``, any few nodes of the cluster) or a
    ``redis+cluster://host:port,host:port`` URL; publishing and the hubs then use sharded pub/sub
    (``ws4redis.broker.cluster``).
    """
    value = get("WS4REDIS_CONNECTION")
    if isinstance(value, dict):
        return {key: val for key, val in value.items() if val is not None or key == "password"}
    if not isinstance(value, str):
        raise ImproperlyConfigured("WS4REDIS_CONNECTION must be a dict of redis-py arguments or a redis:// URL")
    parts = urlsplit(value)
    query = {key: vals[-1] for key, vals in parse_qs(parts.query).items()}
    kwargs: dict[str, Any] = {}
    if parts.scheme == "unix":
        kwargs["unix_socket_path"] = unquote(parts.path)
    elif parts.scheme in ("redis+cluster", "rediss+cluster"):
        kwargs["cluster_nodes"] = [
            (host.rpartition(":")[0] or host, int(host.rpartition(":")[2]) if ":" in host else 6379)
            for host in parts.netloc.rpartition("@")[2].split(",")
            if host
        ]
        if parts.scheme.startswith("rediss"):
            kwargs["ssl"] = True
    elif parts.scheme in ("redis+sentinel", "rediss+sentinel"):
        hosts = parts.netloc.rpartition("@")[2]
        kwargs["sentinels"] = [
            (host.rpartition(":")[0] or host, int(host.rpartition(":")[2]) if ":" in host else 26379)
            for host in hosts.split(",")
            if host
        ]
        service, _, db = parts.path.strip("/").partition("/")
        kwargs["service_name"] = unquote(service) or "mymaster"
        if db:
            kwargs["db"] = int(db)
        if parts.scheme.startswith("rediss"):
            kwargs["ssl"] = True
        if "sentinel_password" in query:
            kwargs["sentinel_kwargs"] = {"password": query["sentinel_password"]}
    elif parts.scheme in ("redis", "rediss"):
        kwargs["host"] = parts.hostname or "localhost"
        kwargs["port"] = parts.port or 6379
        if parts.scheme == "rediss":
            kwargs["ssl"] = True
        if parts.path.strip("/"):
            kwargs["db"] = int(parts.path.strip("/"))
    else:
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: unsupported URL scheme {parts.scheme!r}")
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    if "db" in query:
        kwargs["db"] = int(query["db"])
    return kwargs


_assigned = globals()  # attributes assigned to this module by its users (the original's module of values)


def __getattr__(name: str) -> Any:
    """``ws4redis.settings.WS4REDIS_EXPIRE`` and friends, as the original module offered, read on each access."""
    if name in DEFAULTS:
        return get(name)
    raise AttributeError(f"module 'ws4redis.settings' has no attribute {name!r}")
