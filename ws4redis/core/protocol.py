"""Wire protocols: how a message from Redis becomes a frame, and what a frame from the client means.

Two protocols share one endpoint. Legacy (no subprotocol) is byte for byte the original's: the payload as published,
the heartbeat string echoed. ``ws4redis.v2`` (negotiated with ``Sec-WebSocket-Protocol``) carries JSON envelopes;
see ``docs/protocol.md``. Pure logic: values in, values out.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Protocol

from ws4redis.core.delivery import Delivery
from ws4redis.core.wire import is_text

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

V2_NAME = "ws4redis.v2"

#: Control messages the server may send on ``ws4redis.v2`` (besides ``message``); anything else is a programming error.
CONTROL_KINDS = frozenset(
    {"welcome", "pong", "recovered", "not_recovered", "shutdown", "revoked", "reconnected", "error", "gap"}
)


#: Answers to ``subscribe`` / ``unsubscribe`` (several facilities on one socket, see ``Change``).
CONTROL_KINDS = CONTROL_KINDS | {"subscribed", "unsubscribed"}
#: Presence events on a channel (``ws4redis.broker.presence``), delivered to its v2 subscribers.
CONTROL_KINDS = CONTROL_KINDS | {"join", "leave"}


@dataclasses.dataclass(frozen=True)
class Change:
    """A v2 client asks to listen to another facility (``subscribe``) or to stop (``unsubscribe``).

    Only parsed here; the connection authorises it with the same policy as at connect and answers.
    ``audiences`` empty on ``unsubscribe`` means every audience of that facility.
    """

    kind: str  # "subscribe" or "unsubscribe"
    facility: str
    audiences: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Incoming:
    """What a client frame asks for: publish ``data``, or answer with ``reply`` (a heartbeat), or nothing."""

    publish: bytes | None = None
    text: bool = True  # ``publish`` goes out as a text frame (valid UTF-8), else binary: the client's frame type
    reply: tuple[bytes, bool] | None = None
    change: Change | None = None
    resume: dict[str, str] | None = None  # v2 resume: stream -> last id seen; the connection replays and answers


class WireProtocol(Protocol):
    """One wire protocol (read-only: implementations are frozen, shared between sockets)."""

    @property
    def name(self) -> str | None:
        """The subprotocol's name, ``None`` for legacy."""

    @property
    def wire_key(self) -> str:
        """The key of this protocol's encoded frames in ``Delivery.cache``."""

    def frame(self, delivery: Delivery) -> tuple[bytes, bool]:
        """The frame payload for ``delivery`` and whether it is text; cached on the delivery, so encoded once."""

    def incoming(self, data: bytes, *, text: bool | None = None) -> Incoming:
        """The meaning of a message the client sent, in a text frame when ``text`` (``None``: by its content).

        Total: whatever the client sends, the answer is an ``Incoming`` (an ``error`` reply at worst), never an
        exception."""

    def control(self, kind: str, **fields: object) -> tuple[bytes, bool] | None:
        """A control frame (recovered, shutdown, revoked, ...) or ``None`` where the protocol has none."""


@dataclasses.dataclass(frozen=True)
class LegacyProtocol:
    """The original's protocol: payloads as published, the heartbeat string answered and never published.

    Frozen: one instance is shared by every socket with the same settings (``protocol_for``).
    """

    heartbeat: dataclasses.InitVar[str | None]
    name: str | None = dataclasses.field(default=None, init=False)
    wire_key: str = dataclasses.field(default="wire:legacy", init=False)  # its frames' key in ``Delivery.cache``
    _heartbeat: bytes | None = dataclasses.field(default=None, init=False)

    def __post_init__(self, heartbeat: str | None) -> None:
        object.__setattr__(self, "_heartbeat", heartbeat.encode() if heartbeat else None)

    def frame(self, delivery: Delivery) -> tuple[bytes, bool]:
        return delivery.data, delivery.text

    def incoming(self, data: bytes, *, text: bool | None = None) -> Incoming:
        if self._heartbeat is not None and data == self._heartbeat:
            return Incoming(reply=(data, True))
        return Incoming(publish=data, text=is_text(data) if text is None else text)

    def control(self, kind: str, **fields: object) -> tuple[bytes, bool] | None:
        return None


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a Redis channel's message comes from, as a v2 client may see it.

    ``facility`` and ``audience`` are parsed from the channel name; ``group`` names the group of a group channel (the
    client's own group, so not a secret). A user or session channel never exposes its name: a session key is a
    credential, and the user channel of a socket is by construction its own user's.
    """

    facility: str
    audience: str | None
    group: str | None = None

    @property
    def stream(self) -> str:
        """The key a client tracks its last id under, and names in ``resume``: one per Redis channel it listens to."""
        if self.audience is None:
            return self.facility
        if self.group is not None:
            return f"group:{self.group}:{self.facility}"
        return f"{self.audience}:{self.facility}"


def origin_of(channel: str, *, prefix: str | None) -> Origin:
    """Parse a channel name built by ``ws4redis.broker.audience.channel_names`` back into facility and audience.

    Parsed from the left (after the prefix) for the audience and from the right for the facility, because a facility
    never contains ``:`` while a group name may. A name in no known shape (a custom ``WS4REDIS_SUBSCRIBER``) is passed
    through with no audience rather than guessed at.
    """
    head = f"{prefix}:" if prefix else ""
    rest = channel[len(head) :] if head and channel.startswith(head) else channel
    audience, sep, tail = rest.partition(":")
    if sep and audience == "broadcast" and tail and ":" not in tail:
        return Origin(tail, "broadcast")
    if sep and audience in ("user", "group", "session"):
        name, sep2, facility = tail.rpartition(":")
        if sep2 and name and facility:
            return Origin(facility, audience, name if audience == "group" else None)
    return Origin(rest, None)


def _dumps(value: dict[str, Any]) -> bytes:
    # Compact UTF-8, keys in a fixed order: the bytes a client receives do not depend on which socket sent them.
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate (a client's ping ``t`` may hold one): escaped, still valid JSON
        return json.dumps(value, separators=(",", ":")).encode()


def _utf8(text: str) -> bool:
    """Whether ``text`` can be encoded (JSON lets a client send lone surrogates, which no channel name may hold)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclasses.dataclass(frozen=True, kw_only=True)
class V2Protocol:
    """``ws4redis.v2``: JSON envelopes with channel, audience and id; control messages; ping/pong.

    Server to client, one text frame per message::

        {"type":"message","channel":"chat","audience":"user","id":null,"data":"hello"}

    A payload that is not valid UTF-8 goes out unchanged as a binary frame (no envelope: JSON cannot carry bytes, and
    base64 would cost a third more). Client to server: ``publish``, ``ping`` and ``resume`` envelopes; a binary frame
    is published as is. See ``docs/protocol.md``. Frozen: shared by every socket with the same settings.
    """

    prefix: dataclasses.InitVar[str | None]
    heartbeat: dataclasses.InitVar[str | None] = None
    name: str | None = dataclasses.field(default=V2_NAME, init=False)
    wire_key: str = dataclasses.field(default="wire:v2", init=False)
    _prefix: str | None = dataclasses.field(default=None, init=False)
    # The legacy heartbeat string is not part of v2, but a client mixing both gets its echo rather than an error.
    _heartbeat: bytes | None = dataclasses.field(default=None, init=False)

    def __post_init__(self, prefix: str | None, heartbeat: str | None) -> None:
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_heartbeat", heartbeat.encode() if heartbeat else None)

    def envelope(self, channel: str, data: str, *, message_id: str | None = None) -> dict[str, Any]:
        """The JSON object of one message on ``channel`` (a Redis channel name) as a v2 client sees it."""
        origin = origin_of(channel, prefix=self._prefix)
        envelope: dict[str, Any] = {
            "type": "message",
            "channel": origin.facility,
            "audience": origin.audience,
            "id": message_id,
            "data": data,
        }
        if origin.group is not None:
            envelope["group"] = origin.group
        return envelope

    def frame(self, delivery: Delivery) -> tuple[bytes, bool]:
        cached: tuple[bytes, bool] | None = delivery.cache.get(V2_NAME)
        if cached is None:
            if delivery.event:
                cached = self._event(delivery)
            elif delivery.text:
                cached = (_dumps(self.envelope(delivery.channel, delivery.data.decode(), message_id=delivery.id)), True)
            else:
                cached = (delivery.data, False)
            delivery.cache[V2_NAME] = cached
        return cached

    def incoming(self, data: bytes, *, text: bool | None = None) -> Incoming:
        if self._heartbeat is not None and data == self._heartbeat:
            return Incoming(reply=(data, True))
        if text is False:
            return Incoming(publish=data, text=False)  # a binary frame: published as is, delivered as binary
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            return Incoming(publish=data, text=False)
        try:
            message = json.loads(decoded)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return self._error("not a JSON envelope")
        if not isinstance(message, dict):
            return self._error("an envelope must be a JSON object")
        kind = message.get("type")
        if kind == "publish":
            return self._publish(message)
        if kind == "ping":
            return Incoming(reply=self._control("pong", t=message.get("t")))
        if kind == "resume":
            since = message.get("since")
            if not isinstance(since, dict):
                return self._error("resume needs 'since', an object of stream -> id")
            # Answered by the connection: it replays from history (ws4redis.broker.history) and says recovered or not.
            # An id
            # that is not a string is kept as "" (answered "bad id"), never converted.
            return Incoming(resume={
                stream: position if isinstance(position, str) else "" for stream, position in since.items()
            })
        if kind in ("subscribe", "unsubscribe"):
            return self._change(kind, message)
        if isinstance(kind, str) and len(kind) <= 40:
            return self._error(f"unknown envelope type {kind!r}")
        return self._error("unknown envelope type")

    def _publish(self, message: dict[str, Any]) -> Incoming:
        """``{"type":"publish","data":...}``: a string is published as its text; any other JSON value as its compact
        JSON text."""
        if "data" not in message:
            return self._error("publish needs 'data'")
        payload = message["data"]
        try:
            text = (
                payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            )
            return Incoming(publish=text.encode())
        except (UnicodeEncodeError, ValueError, RecursionError):
            return self._error("publish 'data' is not valid Unicode")

    def _change(self, kind: str, message: dict[str, Any]) -> Incoming:
        """``{"type":"subscribe","facility":"b","audiences":["broadcast"]}``: shape checked here, policy later."""
        facility = message.get("facility")
        audiences = message.get("audiences", [] if kind == "unsubscribe" else ["broadcast"])
        if not isinstance(facility, str) or not facility or not _utf8(facility):
            return self._error(f"{kind} needs 'facility', a string")
        if not isinstance(audiences, list) or not all(isinstance(a, str) and _utf8(a) for a in audiences):
            return self._error(f"{kind} needs 'audiences', a list of strings")
        return Incoming(change=Change(kind, facility, tuple(dict.fromkeys(audiences))))

    def control(self, kind: str, **fields: object) -> tuple[bytes, bool] | None:
        return self._control(kind, **fields)

    def _event(self, delivery: Delivery) -> tuple[bytes, bool]:
        """A join/leave event published on a channel (``ws4redis.broker.presence``), told where it happened."""
        try:
            fields = json.loads(delivery.data)
        except ValueError:
            fields = None
        if not isinstance(fields, dict) or fields.get("type") not in ("join", "leave"):
            return self._control("error", reason="malformed event")
        origin = origin_of(delivery.channel, prefix=self._prefix)
        where: dict[str, Any] = {"channel": origin.facility, "audience": origin.audience}
        if origin.group is not None:
            where["group"] = origin.group
        return _dumps({"type": fields.pop("type"), **where, **fields}), True

    def _control(self, kind: str, **fields: object) -> tuple[bytes, bool]:
        if kind not in CONTROL_KINDS:
            raise ValueError(f"unknown ws4redis.v2 control message {kind!r}")
        return _dumps({"type": kind, **fields}), True

    def _error(self, reason: str) -> Incoming:
        """The client's fault: it is told why, and the socket stays open (one bad frame is not worth a reconnect)."""
        return Incoming(reply=self._control("error", reason=reason))


def protocol_for(subprotocol: str | None, *, heartbeat: str | None, prefix: str | None) -> WireProtocol:
    """The protocol object for a negotiated subprotocol: ``ws4redis.v2``, else the legacy protocol.

    ``ws4redis.protocol.protocol_for`` reads ``prefix`` from the settings when a caller does not give it.
    """
    if subprotocol == V2_NAME:
        return _shared(V2_NAME, prefix, heartbeat)
    return _shared(None, None, heartbeat)


@functools.lru_cache(maxsize=64)
def _shared(subprotocol: str | None, prefix: str | None, heartbeat: str | None) -> WireProtocol:
    """Protocol objects are frozen values: every socket with the same settings shares one (a cache keyed on the
    settings, which are themselves immutable strings)."""
    if subprotocol == V2_NAME:
        return V2Protocol(prefix=prefix, heartbeat=heartbeat)
    return LegacyProtocol(heartbeat)
