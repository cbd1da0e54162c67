"""Wire protocols: how a message from Redis becomes a frame, and what a frame from the client means.

Two protocols share one endpoint. Legacy (no subprotocol) is byte for byte the original's: the payload as published,
the heartbeat string echoed. ``ws4redis.v2`` (negotiated with ``Sec-WebSocket-Protocol``) carries JSON envelopes;
see ``docs/protocol.md``. Pure logic: values in, values out.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from ws4redis.hub import Delivery

__all__ = ["Incoming", "LegacyProtocol", "WireProtocol", "protocol_for"]


@dataclasses.dataclass(frozen=True)
class Incoming:
    """What a client frame asks for: publish ``data``, or answer with ``reply`` (a heartbeat), or nothing."""

    publish: bytes | None = None
    reply: tuple[bytes, bool] | None = None


class WireProtocol(Protocol):
    """One wire protocol."""

    name: str | None

    def frame(self, delivery: Delivery) -> tuple[bytes, bool]:
        """The frame payload for ``delivery`` and whether it is text; cached on the delivery, so encoded once."""

    def incoming(self, data: bytes) -> Incoming:
        """The meaning of a message the client sent."""

    def control(self, kind: str, **fields: object) -> tuple[bytes, bool] | None:
        """A control frame (recovered, shutdown, revoked, ...) or ``None`` where the protocol has none."""


class LegacyProtocol:
    """The original's protocol: payloads as published, the heartbeat string answered and never published."""

    name = None

    def __init__(self, heartbeat: str | None) -> None:
        self._heartbeat = heartbeat.encode() if heartbeat else None

    def frame(self, delivery: Delivery) -> tuple[bytes, bool]:
        return delivery.data, delivery.text

    def incoming(self, data: bytes) -> Incoming:
        if self._heartbeat is not None and data == self._heartbeat:
            return Incoming(reply=(data, True))
        return Incoming(publish=data)

    def control(self, kind: str, **fields: object) -> tuple[bytes, bool] | None:
        return None


def protocol_for(subprotocol: str | None, *, heartbeat: str | None) -> WireProtocol:
    """The protocol object for a negotiated subprotocol."""
    return LegacyProtocol(heartbeat)
