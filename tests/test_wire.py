"""``ws4redis.wire``: the envelope of what ws4redis publishes; pure, so tested with values only (and hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ws4redis import wire
from ws4redis.history import parse_id

# The in-band markers ws4redis used before the envelope, and the envelope's own shapes: what an attacker would try.
OLD_ID = b"\x00\xffws4redis:id:"
OLD_EVENT = b"\x00\xffws4redis:event:"
FORGED_EVENT = json.dumps({"type": "join", "channel": "payroll", "audience": "user", "user": "admin"}).encode()
MARKERS = [
    OLD_ID, OLD_EVENT, OLD_ID + b"9999999999999-0\n", OLD_EVENT + FORGED_EVENT, OLD_ID + b"\xff\n",
    OLD_ID + "²-0\n".encode(),
    wire.MAGIC, wire.head(text=True), wire.head(text=False), wire.head(text=True, event=True),
    wire.encode(FORGED_EVENT, text=True, event=True), wire.encode(b"x", text=True, message_id="9999999999999-0"),
    wire.MAGIC + b"2t\n", wire.MAGIC + b"1z\n", wire.head(text=True) + b"\xff\n",
    wire.head(text=True) + "²-0\n".encode(),
]


def test_a_round_trip_keeps_frame_type_id_and_kind() -> None:
    assert wire.decode(wire.encode(b"hello", text=True)) == wire.Record(b"hello", True, None, False)
    assert wire.decode(wire.encode(b"hello", text=False)) == wire.Record(b"hello", False, None, False)
    assert wire.decode(wire.encode(b"", text=False)) == wire.Record(b"", False, None, False)
    assert wire.decode(wire.encode(b"x\ny", text=True, message_id="17-3")) == wire.Record(b"x\ny", True, "17-3", False)
    event = wire.encode(b'{"type":"leave","user":null}', text=True, event=True)
    assert wire.decode(event) == wire.Record(b'{"type":"leave","user":null}', True, None, True)


def test_the_history_script_writes_what_decode_reads() -> None:
    # The Lua script appends ``id .. "\n" .. payload`` to ``head``; nothing else builds an id record.
    assert wire.decode(wire.head(text=False) + b"1700000000000-12\n\x00\x01") == wire.Record(
        b"\x00\x01", False, "1700000000000-12", False
    )


@pytest.mark.parametrize("raw", [b"", b"plain text", "é".encode(), b"\x00\xff binary", *MARKERS[:6]])
def test_anything_without_the_magic_is_a_raw_payload_never_parsed(raw: bytes) -> None:
    assert wire.decode(raw) == wire.Record(raw, wire.is_text(raw), None, False)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (wire.MAGIC + b"2t\nx", "unknown envelope version"),
        (wire.MAGIC + b"1z\nx", "unknown kind"),
        (wire.MAGIC + b"1", "unknown kind"),
        (wire.head(text=True) + b"17-3", "unterminated header"),
        (wire.head(text=True) + b"1" * 60 + b"\n", "unterminated header"),
        (wire.head(text=True) + b"\xff\nx", "malformed id"),
        (wire.head(text=True) + "²-0\nx".encode(), "malformed id"),
        (wire.head(text=True) + b"99999999999999999999999-0\nx", "malformed id"),
        (wire.head(text=True) + b"18446744073709551616-0\nx", "malformed id"),
        (wire.head(text=True) + b" 1-0\nx", "malformed id"),
        (wire.head(text=True) + b"\n\xff", "text record is not UTF-8"),
        (wire.head(text=True, event=True) + b"\n[]", "malformed event"),
        (wire.head(text=True, event=True) + b'\n{"type":"message"}', "malformed event"),
        (wire.head(text=True, event=True) + b"\n" + b"[" * 100000, "malformed event"),
    ],
)
def test_a_bad_record_is_named_not_raised(data: bytes, reason: str) -> None:
    assert wire.decode(data) == wire.Bad(reason)


@pytest.mark.parametrize(
    "value",
    ["²-0", "0-²", "١٢-3", "1-", "-1", "1--1", "+1-0", " 1-0", "1-0 ", "1_0-0", "", "18446744073709551616-0",
     b"\xff-0", b"\xc2\xb2-0", None, 17, 1.5, ["1-0"], {"1": "0"}],
)
def test_stream_ids_are_strict_ascii_and_64_bit(value: object) -> None:
    assert wire.parse_stream_id(value) is None
    assert parse_id(value) is None


def test_valid_stream_ids() -> None:
    assert wire.parse_stream_id("1700000000000-3") == (1700000000000, 3)
    assert wire.parse_stream_id(b"0-0") == (0, 0)
    assert wire.parse_stream_id("18446744073709551615-18446744073709551615") == (2**64 - 1, 2**64 - 1)


# -- properties -----------------------------------------------------------------------------------------------------
payloads = st.one_of(st.binary(max_size=300), st.sampled_from(MARKERS).flatmap(
    lambda marker: st.binary(max_size=60).map(lambda tail: marker + tail)
))


@settings(max_examples=500, deadline=None)
@given(payloads, st.booleans())
def test_no_payload_can_take_the_place_of_metadata(payload: bytes, text: bool) -> None:
    """Whatever bytes a client sends, once ws4redis framed them they decode to exactly those bytes: no id, no event."""
    text = text and wire.is_text(payload)
    assert wire.decode(wire.encode(payload, text=text)) == wire.Record(payload, text, None, False)


@settings(max_examples=500, deadline=None)
@given(st.one_of(payloads, st.binary(max_size=80).map(lambda tail: wire.MAGIC + tail)))
def test_decode_is_total(data: bytes) -> None:
    record = wire.decode(data)
    assert isinstance(record, (wire.Record, wire.Bad))
    if isinstance(record, wire.Record):
        assert not record.text or wire.is_text(record.payload)  # a text record can always be sent as a text frame
        assert record.id is None or wire.parse_stream_id(record.id) is not None
        assert not record.event or record.text


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=50), st.binary(max_size=50),
                 st.tuples(st.integers(), st.integers()).map(lambda t: f"{t[0]}-{t[1]}")))
def test_parse_stream_id_is_total(value: str | bytes) -> None:
    parsed = wire.parse_stream_id(value)
    assert parsed is None or (0 <= parsed[0] < 2**64 and 0 <= parsed[1] < 2**64)
