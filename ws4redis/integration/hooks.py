"""Facility hooks: server-side code for the no-code path (connect, client message, disconnect).

The original refused this (its issues #9, #90, #156): every socket was pure plumbing. Here a project names callables
in ``WS4REDIS_HOOKS``::

    WS4REDIS_HOOKS = {
        "chat": {"message": "chat.hooks.clean_message", "connect": "chat.hooks.joined"},
        "*": {"disconnect": "chat.hooks.left"},          # every facility without a hook of that kind
    }

A facility's own entry wins per kind; ``"*"`` fills the kinds it does not name. Signatures (all keyword-free)::

    connect(request, subscription) -> None           # may raise PermissionDenied: answered 403 before the upgrade
    message(request, subscription, data: bytes) -> bytes | str | None   # None drops the message (counted)
    disconnect(request, subscription) -> None        # after the socket closed; errors are logged, never raised

Why it is safe to run user code here:

- a hook runs in its socket's own greenlet, so a hook that waits (I/O, a query, ``time.sleep`` under gevent's
  monkey-patching) blocks only that socket (a new socket's connect hook: one of the worker's handshake greenlets,
  ``ws4redis.runtime.gevent.handshakes``); ``WS4REDIS_HOOK_TIMEOUT`` bounds it with ``gevent.Timeout``. CPU-bound
  work still holds the whole worker, as any code under gevent does: keep hooks short or hand work to a task queue;
- an exception (or the timeout) closes only that socket: logged with its traceback, counted, and closed with 1011
  (a ``ws4redis.v2`` client first gets ``{"type":"error","reason":"internal error"}``, then the close);
- paths are resolved on first use, not at import, and a path that does not import raises ``ImproperlyConfigured``
  naming the setting, instead of silently doing nothing (the original's fate for bad dotted paths).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import gevent

from ws4redis import metrics, settings
from ws4redis.exceptions import Ws4RedisError

__all__ = [
    "KEEPS_DB_CONNECTIONS",
    "KINDS",
    "FacilityHooks",
    "HookFailed",
    "close_db_connections",
    "connect_or_refuse",
    "hooks_for",
    "reset_cache",
    "run_connect_or_refuse",
]

logger = logging.getLogger("ws4redis.hooks")  # its name before the move: logging configurations keep it

KINDS = ("connect", "message", "disconnect")

#: A greenlet with this attribute set runs one handshake after another for as long as its process lives
#: (``ws4redis.runtime.gevent.handshakes``): ``close_db_connections`` leaves its connections to ``CONN_MAX_AGE``.
KEEPS_DB_CONNECTIONS = "ws4redis_handshake_worker"

_cache: dict[tuple[str, str], FacilityHooks] = {}


class HookFailed(Ws4RedisError):
    """A hook raised or overran ``WS4REDIS_HOOK_TIMEOUT``: the socket it ran for is closed (1011), no other one."""

    def __init__(self, kind: str, facility: str, cause: BaseException) -> None:
        super().__init__(f"{kind} hook of facility {facility!r} failed: {cause!r}")
        self.kind = kind
        self.facility = facility
        self.cause = cause


@dataclasses.dataclass(frozen=True)
class FacilityHooks:
    """The resolved hooks of one facility; an absent kind is ``None`` and costs nothing per message."""

    facility: str
    connect: Callable[..., Any] | None = None
    message: Callable[..., Any] | None = None
    disconnect: Callable[..., Any] | None = None

    @property
    def empty(self) -> bool:
        return self.connect is None and self.message is None and self.disconnect is None

    def run_connect(self, request: Any, subscription: Any) -> None:
        """Run the connect hook; ``PermissionDenied`` passes through (a refusal), anything else is ``HookFailed``."""
        if self.connect is not None:
            from django.core.exceptions import PermissionDenied

            _bounded("connect", self.facility, self.connect, (request, subscription), passthrough=(PermissionDenied,))

    def run_message(self, request: Any, subscription: Any, data: bytes) -> bytes | None:
        """What to publish instead of ``data``: the hook's bytes (``str`` is encoded), or ``None`` to drop it."""
        if self.message is None:
            return data
        result = _bounded("message", self.facility, self.message, (request, subscription, data))
        if result is None:
            metrics.DROPPED.labels("dropped_by_hook").inc()
            return None
        if isinstance(result, str):
            return result.encode()
        if isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result)
        raise HookFailed("message", self.facility, TypeError(f"returned {type(result).__name__}, not bytes/str/None"))

    def run_disconnect(self, request: Any, subscription: Any) -> None:
        """Run the disconnect hook; the socket is already gone, so a failure is only logged."""
        if self.disconnect is None:
            return
        try:
            _bounded("disconnect", self.facility, self.disconnect, (request, subscription))
        except HookFailed:
            pass  # already logged by _bounded


def _bounded(
    kind: str, facility: str, func: Callable[..., Any], args: tuple[Any, ...], *,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call ``func(*args)`` under ``WS4REDIS_HOOK_TIMEOUT``; any failure becomes a logged, counted ``HookFailed``."""
    timeout = settings.get("WS4REDIS_HOOK_TIMEOUT")
    try:
        with gevent.Timeout(float(timeout) if timeout else None):
            try:
                return func(*args)
            finally:
                close_db_connections()
    except passthrough:
        raise
    except (Exception, gevent.Timeout) as exc:
        metrics.DROPPED.labels(f"{kind}_hook_failed").inc()
        if isinstance(exc, gevent.Timeout):
            logger.error("ws4redis: %s hook of %r took over %ss (WS4REDIS_HOOK_TIMEOUT)", kind, facility, timeout)
        else:
            logger.exception("ws4redis: %s hook of %r raised", kind, facility)
        raise HookFailed(kind, facility, exc) from exc


def close_db_connections() -> None:
    """A socket lives for hours: a database connection its hook opened must not live as long (one per greenlet).

    A handshake worker (``KEEPS_DB_CONNECTIONS``) runs connect hooks one after another for as long as the process
    lives: its connection follows ``CONN_MAX_AGE``, as at the end of a Django request, so the next handshake reuses it.
    """
    from django.db import DatabaseError, close_old_connections, connections

    if getattr(gevent.getcurrent(), KEEPS_DB_CONNECTIONS, False):
        close_old_connections()
        return
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except DatabaseError:  # another greenlet's (a server where they share Django's connection handler)
            pass


def _resolve(value: Any, where: str) -> Callable[..., Any]:
    from django.core.exceptions import ImproperlyConfigured
    from django.utils.module_loading import import_string

    if callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{where} must be a callable or a dotted path, not {value!r}")
    try:
        func = import_string(value)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{where} = {value!r} does not import: {exc}") from exc
    if not callable(func):
        raise ImproperlyConfigured(f"{where} = {value!r} is not callable")
    return func  # type: ignore[no-any-return]


def hooks_for(facility: str) -> FacilityHooks:
    """The hooks of ``facility``, resolved once per distinct configuration (so ``override_settings`` works)."""
    from django.core.exceptions import ImproperlyConfigured

    config = settings.get("WS4REDIS_HOOKS") or {}
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured("WS4REDIS_HOOKS must be a dict of facility (or '*') -> {kind: dotted path}")
    key = (facility, repr(sorted((str(k), repr(v)) for k, v in config.items())))
    cached = _cache.get(key)
    if cached is not None:
        return cached
    found: dict[str, Callable[..., Any]] = {}
    for name in ("*", facility):  # the facility's own entry last, so it wins
        entry = config.get(name)
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            raise ImproperlyConfigured(f"WS4REDIS_HOOKS[{name!r}] must be a dict of kind -> dotted path")
        for kind, value in entry.items():
            if kind not in KINDS:
                raise ImproperlyConfigured(
                    f"WS4REDIS_HOOKS[{name!r}]: unknown hook {kind!r} (one of {', '.join(KINDS)})"
                )
            found[kind] = _resolve(value, f"WS4REDIS_HOOKS[{name!r}][{kind!r}]")
    hooks = FacilityHooks(facility, **found)
    if len(_cache) > 1024:  # facilities are client-chosen names: never let the cache grow without bound
        _cache.clear()
    _cache[key] = hooks
    return hooks


def reset_cache() -> None:
    """Forget resolved hooks (tests that change ``WS4REDIS_HOOKS``)."""
    _cache.clear()


def connect_or_refuse(handshake: Any) -> None:
    """Run the connect hook of an accepted handshake, before the upgrade: a refusal is an HTTP status.

    ``PermissionDenied`` from the hook is 403 (like the channel policy); a failure is 500. Either way the socket never
    opens, so no disconnect hook runs for it.
    """
    hooks = hooks_for(handshake.subscription.facility)
    if hooks.connect is not None:
        run_connect_or_refuse(hooks, handshake.request, handshake.subscription)


def run_connect_or_refuse(hooks: FacilityHooks, request: Any, subscription: Any) -> None:
    """``hooks.run_connect`` with its outcome as a refusal: ``ChannelRefused`` (403, or a v2 ``error`` answer) for
    ``PermissionDenied``, ``HandshakeRefused`` 500 (``internal error``) for a failing hook. One mapping for a new
    connection and a run-time subscription, so both decide the same way."""
    from django.core.exceptions import PermissionDenied

    from ws4redis.exceptions import ChannelRefused, HandshakeRefused

    try:
        hooks.run_connect(request, subscription)
    except PermissionDenied as exc:
        raise ChannelRefused(str(exc) or "refused by the connect hook") from exc
    except HookFailed as exc:
        refusal = HandshakeRefused("internal error")
        refusal.status, refusal.reason = 500, "Internal Server Error"
        raise refusal from exc
