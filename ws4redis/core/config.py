"""``Config``: the settings a session needs, read once, converted once, frozen and shared by every socket.

Pure: ``Config.from_settings`` takes a getter (``ws4redis.settings.get``), so this module imports nothing of Django.
``ws4redis.configuration.current()`` caches one instance per process and drops it on Django's ``setting_changed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["MESSAGES_PER_ROUND", "QUEUE_ENTRY_BYTES", "SETTINGS", "Config"]

#: Client messages a driver hands to the session per round at most, then it yields, so that one client writing as
#: fast as it can does not hold the worker (issue 19: a ping flood delayed every other socket's deliveries).
MESSAGES_PER_ROUND = 32
#: What one queued message costs beyond its payload (its list slot, its share of the Delivery): counted against
#: ``WS4REDIS_QUEUE_BYTES``, so a client that stops reading cannot grow an unbounded queue of empty messages.
QUEUE_ENTRY_BYTES = 64

#: The settings ``Config`` is made of (``ws4redis.configuration`` rebuilds it when one of them changes).
SETTINGS = frozenset({
    "WS4REDIS_HEARTBEAT", "WS4REDIS_PREFIX", "WS4REDIS_QUEUE_BYTES", "WS4REDIS_MAX_MESSAGE_SIZE",
    "WS4REDIS_SLOW_CONSUMER", "WS4REDIS_PUBLISH_RATE", "WS4REDIS_PUBLISH_BURST", "WS4REDIS_RESUME_WAIT",
    "WS4REDIS_EXPIRE", "WS4REDIS_WAKE_INTERVAL", "WS4REDIS_SUBSCRIBE_TIMEOUT", "WS4REDIS_MAX_CONNECTIONS_PER_USER",
    "WS4REDIS_CONTROL_RATE", "WS4REDIS_CONTROL_BURST",
})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """What a session and its driver read of the settings; see ``docs/settings.md`` for each one's meaning.

    Frozen and slotted: one instance is shared by every socket of a process (never a copy per socket).
    """

    heartbeat: str | None = None  # WS4REDIS_HEARTBEAT
    prefix: str | None = None  # WS4REDIS_PREFIX
    queue_bytes: int = 1024 * 1024  # WS4REDIS_QUEUE_BYTES
    max_message_size: int = 64 * 1024  # WS4REDIS_MAX_MESSAGE_SIZE
    drop_oldest: bool = False  # WS4REDIS_SLOW_CONSUMER == "drop-oldest"
    publish_rate: float | None = 20.0  # WS4REDIS_PUBLISH_RATE (None: no limit)
    publish_burst: float = 40.0  # WS4REDIS_PUBLISH_BURST
    resume_wait: float = 2.0  # WS4REDIS_RESUME_WAIT (0: live messages are never held)
    expire: int = 3600  # WS4REDIS_EXPIRE (0: no kept messages)
    wake_interval: float = 10.0  # WS4REDIS_WAKE_INTERVAL
    subscribe_timeout: float = 5.0  # WS4REDIS_SUBSCRIBE_TIMEOUT
    max_connections_per_user: int | None = None  # WS4REDIS_MAX_CONNECTIONS_PER_USER
    # WS4REDIS_CONTROL_RATE / _BURST (None: no limit): the allowance a driver's ``allow`` spends (``Session.receive``);
    # the gevent transports keep their own, shared with ping and pong frames.
    control_rate: float | None = 10.0
    control_burst: float = 50.0

    @classmethod
    def from_settings(cls, get: Callable[[str], Any]) -> Config:
        """Read and convert every field once through ``get`` (a setting's name -> its value or default)."""
        rate = get("WS4REDIS_PUBLISH_RATE")
        limit = get("WS4REDIS_MAX_CONNECTIONS_PER_USER")
        control = get("WS4REDIS_CONTROL_RATE")
        return cls(
            heartbeat=get("WS4REDIS_HEARTBEAT") or None,
            prefix=get("WS4REDIS_PREFIX"),
            queue_bytes=int(get("WS4REDIS_QUEUE_BYTES")),
            max_message_size=int(get("WS4REDIS_MAX_MESSAGE_SIZE")),
            drop_oldest=get("WS4REDIS_SLOW_CONSUMER") == "drop-oldest",
            publish_rate=float(rate) if rate else None,
            publish_burst=float(get("WS4REDIS_PUBLISH_BURST")),
            resume_wait=float(get("WS4REDIS_RESUME_WAIT") or 0),
            expire=int(get("WS4REDIS_EXPIRE") or 0),
            wake_interval=float(get("WS4REDIS_WAKE_INTERVAL")),
            subscribe_timeout=float(get("WS4REDIS_SUBSCRIBE_TIMEOUT")),
            max_connections_per_user=int(limit) if limit else None,
            control_rate=float(control) if control else None,
            control_burst=float(get("WS4REDIS_CONTROL_BURST")),
        )
