"""Wire protocols (legacy and ``ws4redis.v2``): now in the pure core, ``ws4redis.core.protocol``; re-exported here,
where they have always been imported from, with ``protocol_for`` reading ``WS4REDIS_PREFIX`` when not given."""

from __future__ import annotations

from typing import Any

from ws4redis.core.protocol import (
    CONTROL_KINDS,
    V2_NAME,
    Change,
    Incoming,
    LegacyProtocol,
    Origin,
    V2Protocol,
    WireProtocol,
    origin_of,
)
from ws4redis.core.protocol import protocol_for as _protocol_for

__all__ = [
    "CONTROL_KINDS",
    "V2_NAME",
    "Change",
    "Incoming",
    "LegacyProtocol",
    "Origin",
    "V2Protocol",
    "WireProtocol",
    "origin_of",
    "protocol_for",
]

_UNSET: Any = object()


def protocol_for(subprotocol: str | None, *, heartbeat: str | None, prefix: str | None = _UNSET) -> WireProtocol:
    """The protocol object for a negotiated subprotocol: ``ws4redis.v2``, else the legacy protocol.

    ``prefix`` (``WS4REDIS_PREFIX``) is read from the settings when not given, so callers need not know v2 needs it.
    """
    if prefix is _UNSET:
        from ws4redis import settings

        prefix = settings.get("WS4REDIS_PREFIX")
    return _protocol_for(subprotocol, heartbeat=heartbeat, prefix=prefix)
