"""Property-based fuzzing of everything a client controls before and after the upgrade.

Each property says: whatever the input, the outcome is a value or a documented refusal, never another exception
(which would be a 500 or a dead connection). Runs a few hundred examples per property in the normal suite; set
``WS4REDIS_FUZZ_EXAMPLES=200000`` for a long fuzzing run.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ws4redis import wire
from ws4redis.audience import AUDIENCES, channel_names, parse_flags, validate_facility
from ws4redis.auth import check_origin, check_upgrade, choose_subprotocol
from ws4redis.exceptions import HandshakeRefused, UnknownFacility
from ws4redis.history import parse_id
from ws4redis.protocol import Incoming, LegacyProtocol, V2Protocol

EXAMPLES = int(os.environ.get("WS4REDIS_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

header_text = st.text(st.characters(codec="latin-1"), max_size=80)


@fuzz
@given(st.text(max_size=200))
def test_facility_names_are_valid_or_404(name: str) -> None:
    try:
        facility = validate_facility(name, max_length=100)
    except UnknownFacility as refusal:
        assert refusal.status == 404
        return
    # An accepted facility cannot make a channel name ambiguous: it adds no separator of its own.
    (channel,) = channel_names(prefix="p", facility=facility, users=["ann"])
    assert channel.split(":", 3) == ["p", "user", "ann", facility]


@fuzz
@given(st.text(max_size=300))
def test_query_flags_never_raise(query: str) -> None:
    sub = parse_flags("f", query)
    assert sub.subscribe <= set(AUDIENCES) and sub.publish <= set(AUDIENCES)
    assert sub.with_flags(sub.flags) == sub


@fuzz
@given(st.dictionaries(
    st.sampled_from(["REQUEST_METHOD", "HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_SEC_WEBSOCKET_VERSION",
                     "HTTP_SEC_WEBSOCKET_KEY", "HTTP_SEC_WEBSOCKET_PROTOCOL"]),
    st.one_of(header_text, st.sampled_from(["GET", "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ=="])),
))
def test_handshake_headers_give_a_key_or_a_status(environ: dict[str, Any]) -> None:
    try:
        key = check_upgrade(environ)
    except HandshakeRefused as refusal:
        assert refusal.status in (400, 426)
    else:
        assert len(key) == 24
    offered = [p.strip() for p in environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "").split(",") if p.strip()]
    chosen = choose_subprotocol(environ)
    # v2, nothing, or (as the original did) the first name offered, never a ws4redis name this server does not speak
    assert chosen in (None, "ws4redis.v2") or (chosen == offered[0] and not chosen.startswith("ws4redis."))


@fuzz
@given(header_text, header_text)
def test_origins_are_allowed_or_403(origin: str, host: str) -> None:
    with override_settings(ALLOWED_HOSTS=["example.com", ".example.org"]):
        try:
            check_origin({"HTTP_ORIGIN": origin, "HTTP_HOST": host})
        except HandshakeRefused as refusal:
            assert refusal.status == 403


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@fuzz
@given(st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"type": st.sampled_from(["publish", "ping", "resume", "subscribe", "nope"])},
                          optional={"data": json_values, "since": json_values, "t": json_values}
                          ).map(lambda v: json.dumps(v).encode()),
))
def test_v2_envelopes_from_clients_never_raise(frame: bytes) -> None:
    assert isinstance(V2Protocol(prefix="p", heartbeat="--hb--").incoming(frame), Incoming)


# Every in-band marker ws4redis ever used, and its envelope's own (ws4redis.wire): what a forger starts a frame with.
MARKERS = [
    b"\x00\xff", b"\x00\xffws4redis:id:", b"\x00\xffws4redis:event:", b"\x00\xffws4redis:id:9999999999999-0\n",
    b"\x00\xffws4redis:id:\xff\n", b"\x00\xffws4redis:id:" + "²-0\n".encode(),
    wire.MAGIC, wire.head(text=True), wire.head(text=False), wire.head(text=True, event=True),
    wire.head(text=True) + b"9999999999999-0\n", wire.head(text=True, event=True) + b"\n",
]
marked = st.sampled_from(MARKERS).flatmap(lambda marker: st.one_of(
    st.binary(max_size=80),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.just(b'{"type":"join","channel":"payroll","audience":"user","user":"admin"}'),
).map(lambda tail: marker + tail))


@fuzz
@given(marked, st.booleans())
def test_frames_starting_with_a_marker_are_published_as_they_came(frame: bytes, text: bool) -> None:
    """A client's frame that starts with a marker is a payload (any legacy frame, a v2 binary frame): published byte
    for byte, framed as the client sent it, and what the hub reads back is that payload, with no id and no event."""
    text = text and wire.is_text(frame)  # a text frame is valid UTF-8: the transport refuses it otherwise (1007)
    for protocol, as_text in ((V2Protocol(prefix="p", heartbeat="--hb--"), False), (LegacyProtocol("--hb--"), text)):
        incoming = protocol.incoming(frame, text=as_text)
        assert (incoming.publish, incoming.text, incoming.resume, incoming.change) == (frame, as_text, None, None)
        assert wire.decode(wire.encode(frame, text=incoming.text)) == wire.Record(frame, as_text, None, False)


@fuzz
@given(st.one_of(marked, st.binary(max_size=120)))
def test_records_from_redis_never_raise(data: bytes) -> None:
    """Whatever another publisher put on a channel, the hub gets a record to deliver or a reason to skip it."""
    assert isinstance(wire.decode(data), (wire.Record, wire.Bad))


@fuzz
@given(st.one_of(st.text(max_size=30), json_values))
def test_resume_ids_never_raise(value: Any) -> None:
    frame = json.dumps({"type": "resume", "since": {"broadcast:f": value}}).encode()
    incoming = V2Protocol(prefix="p").incoming(frame)
    assert incoming.resume is not None or incoming.reply is not None
    for position in (incoming.resume or {}).values():
        parsed = parse_id(position)
        assert parsed is None or parsed[0] < 2**64
