"""The envelope of everything ws4redis publishes on a Redis channel: what the server adds to a payload, out of band.

Metadata that rides *in front of* a client's bytes can be forged by a client that sends those bytes itself, unless
the server frames every payload: so every message ws4redis publishes (client publishes, ``RedisPublisher``, views,
hooks, model publishing, presence events, the history script) carries one header the server writes, and whatever
follows the header is the payload, opaque, never looked at::

    b"\\xffW4R" + b"1" + kind + id + b"\\n" + payload

- ``\\xffW4R``: the magic. ``\\xff`` never occurs in UTF-8, so no text payload of another publisher starts with it.
- ``1``: the envelope version. Another version is a bad record (skipped and counted), never guessed at.
- ``kind``: ``t`` a message to send as a text frame (the payload is valid UTF-8), ``b`` a message to send as a binary
  frame, ``e`` a v2 control event (presence join/leave; JSON, never shown to legacy clients). The frame type a client
  used therefore survives Redis.
- ``id``: the message's stream id (``1700000000000-0``) on a facility with history, written by the publish script;
  empty otherwise.

A message that does not start with the magic was not published by ws4redis (a django-websocket-redis 0.6 process, a
``redis-cli PUBLISH``): it is a *raw* payload, delivered as is with no id and no event, its frame type decided by its
content as 0.6 did (text when valid UTF-8). Raw payloads are never parsed for metadata, whatever bytes they hold.

Pure: bytes in, values out, no I/O; every function here is total (returns a value for any input, never raises), which
``tests/test_wire.py`` checks with hypothesis. The hub relies on it: a record it cannot parse is counted and skipped,
and its Redis link stays up.
"""

from __future__ import annotations

import json
from typing import NamedTuple

__all__ = [
    "MAGIC",
    "Bad",
    "Record",
    "decode",
    "encode",
    "head",
    "is_text",
    "parse_stream_id",
]

#: The first bytes of every message ws4redis publishes (not valid UTF-8, so never the start of a text payload).
MAGIC = b"\xffW4R"
_VERSION = b"1"
_PREFIX = MAGIC + _VERSION
_TEXT, _BINARY, _EVENT = b"t", b"b", b"e"
_KINDS = frozenset((_TEXT, _BINARY, _EVENT))
_DIGITS = 20  # 2**64 - 1 has 20 digits: both halves of a Redis stream id are unsigned 64-bit integers
_MAX_ID = 2 * _DIGITS + 1
_HEADER_END = len(_PREFIX) + 1  # where the id starts
_U64 = 2**64


class Record(NamedTuple):
    """One message from Redis as the hub delivers it."""

    payload: bytes
    text: bool  # send as a text frame (``payload`` is valid UTF-8), else as a binary frame
    id: str | None  # stream id on a facility with history, else None
    event: bool  # a v2 control event (presence), never a message


class Bad(NamedTuple):
    """A message that starts like ws4redis' envelope but is not one: skipped, counted under ``reason``."""

    reason: str


def is_text(data: bytes) -> bool:
    """Whether ``data`` can go out as a text frame (valid UTF-8): the frame type of a raw payload, as 0.6 chose it."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def head(*, text: bool, event: bool = False) -> bytes:
    """The header up to the id: the publish script of a history facility appends ``id + "\\n" + payload``."""
    return _PREFIX + (_EVENT if event else _TEXT if text else _BINARY)


def encode(payload: bytes, *, text: bool, event: bool = False, message_id: str | None = None) -> bytes:
    """``payload`` in its envelope. ``text`` must only be true for valid UTF-8 (the decoder checks, and skips a
    text record that is not); ``event`` payloads are JSON objects with ``type`` join or leave."""
    return b"".join((head(text=text, event=event), (message_id or "").encode("ascii"), b"\n", payload))


def parse_stream_id(value: object) -> tuple[int, int] | None:
    """``"1700000000000-3"`` (``str`` or ``bytes``) as ``(1700000000000, 3)``; ``None`` for anything else.

    Strict ASCII digits: ``str.isdigit`` also accepts ``"²"`` or ``"٣"``, which ``int`` then refuses or reads as
    another number. Both halves must fit in 64 bits, as Redis' own ids do.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if not raw.isascii():
            return None
        text = raw.decode("ascii")
    elif isinstance(value, str):
        text = value
    else:
        return None
    ms, sep, seq = text.partition("-")
    if not sep or not _digits(ms) or not _digits(seq):
        return None
    first, second = int(ms), int(seq)
    if first >= _U64 or second >= _U64:
        return None
    return first, second


def _digits(text: str) -> bool:
    return 0 < len(text) <= _DIGITS and text.isascii() and text.isdigit()


def decode(data: bytes) -> Record | Bad:
    """A message read from a Redis channel: its ``Record``, or ``Bad`` when it has ws4redis' magic but no valid
    envelope. Never raises. A message without the magic is raw (see the module docstring)."""
    if not data.startswith(MAGIC):
        return Record(data, is_text(data), None, False)
    if not data.startswith(_PREFIX):
        return Bad("unknown envelope version")
    kind = data[len(_PREFIX) : _HEADER_END]
    if kind not in _KINDS:
        return Bad("unknown kind")
    end = data.find(b"\n", _HEADER_END, _HEADER_END + _MAX_ID + 1)
    if end < 0:
        return Bad("unterminated header")
    raw_id = data[_HEADER_END:end]
    message_id: str | None = None
    if raw_id:
        if parse_stream_id(raw_id) is None:
            return Bad("malformed id")
        message_id = raw_id.decode("ascii")
    payload = data[end + 1 :]
    if kind == _BINARY:
        return Record(payload, False, message_id, False)
    if not is_text(payload):
        return Bad("text record is not UTF-8")
    if kind == _EVENT and not _is_event(payload):
        return Bad("malformed event")
    return Record(payload, True, message_id, kind == _EVENT)


def _is_event(payload: bytes) -> bool:
    """A presence event: a JSON object whose ``type`` is ``join`` or ``leave`` (what the v2 framing expects)."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and value.get("type") in ("join", "leave")
