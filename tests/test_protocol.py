"""The wire protocols as pure values: legacy byte for byte, ws4redis.v2 envelopes and control messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ws4redis.audience import channel_names
from ws4redis.hub import Delivery
from ws4redis.protocol import Incoming, LegacyProtocol, Origin, V2Protocol, origin_of, protocol_for


def v2(prefix: str | None = "pfx") -> V2Protocol:
    return V2Protocol(prefix=prefix, heartbeat="--heartbeat--")


def decode(frame: tuple[bytes, bool] | None) -> Any:
    assert frame is not None
    data, text = frame
    assert text is True
    return json.loads(data)


def test_protocol_for_chooses_by_subprotocol() -> None:
    assert isinstance(protocol_for(None, heartbeat=None), LegacyProtocol)
    assert isinstance(protocol_for("something-else", heartbeat=None), LegacyProtocol)
    chosen = protocol_for("ws4redis.v2", heartbeat=None, prefix="p")
    assert isinstance(chosen, V2Protocol) and chosen.name == "ws4redis.v2"


def test_protocol_for_reads_the_prefix_from_settings(settings: Any) -> None:
    settings.WS4REDIS_PREFIX = "site"
    protocol = protocol_for("ws4redis.v2", heartbeat=None)
    assert isinstance(protocol, V2Protocol)
    assert protocol.envelope("site:broadcast:news", "x")["channel"] == "news"


def test_legacy_is_the_original_byte_for_byte() -> None:
    legacy = LegacyProtocol("--heartbeat--")
    assert legacy.frame(Delivery("pfx:broadcast:f", b"hello", True)) == (b"hello", True)
    assert legacy.frame(Delivery("pfx:broadcast:f", b"\xff\x00", False)) == (b"\xff\x00", False)
    assert legacy.incoming(b"--heartbeat--") == Incoming(reply=(b"--heartbeat--", True))
    assert legacy.incoming(b'{"type":"ping"}') == Incoming(publish=b'{"type":"ping"}')
    assert legacy.control("shutdown", reconnect_in=1000) is None


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        ({"broadcast": True}, Origin("chat", "broadcast")),
        ({"users": ["alice"]}, Origin("chat", "user")),
        ({"groups": ["red:team"]}, Origin("chat", "group", "red:team")),
        ({"sessions": ["k3y"]}, Origin("chat", "session")),
    ],
)
def test_origin_parses_every_channel_name_the_audience_module_builds(
    audience: dict[str, Any], expected: Origin
) -> None:
    for prefix in ("pfx", "a:b", None):
        [channel] = channel_names(prefix=prefix, facility="chat", **audience)
        assert origin_of(channel, prefix=prefix) == expected


def test_origin_of_an_unknown_name_has_no_audience() -> None:
    assert origin_of("pfx:custom-channel", prefix="pfx") == Origin("custom-channel", None)
    assert origin_of("pfx:user:chat", prefix="pfx").audience is None  # no name and facility: not a user channel
    assert Origin("chat", "group", "red").stream == "group:red:chat"
    assert Origin("chat", "user").stream == "user:chat"


def test_message_envelope_says_channel_and_audience_never_the_session_key() -> None:
    [channel] = channel_names(prefix="pfx", facility="chat", sessions=["s3cr3tkey"])
    frame = v2().frame(Delivery(channel, "héllo".encode(), True))
    assert b"s3cr3tkey" not in frame[0]
    assert decode(frame) == {"type": "message", "channel": "chat", "audience": "session", "id": None, "data": "héllo"}
    [user] = channel_names(prefix="pfx", facility="chat", users=["alice"])
    assert b"alice" not in v2().frame(Delivery(user, b"x", True))[0]


def test_group_envelope_names_the_group() -> None:
    [channel] = channel_names(prefix="pfx", facility="chat", groups=["red"])
    assert decode(v2().frame(Delivery(channel, b"x", True)))["group"] == "red"


def test_binary_payloads_stay_binary_frames() -> None:
    assert v2().frame(Delivery("pfx:broadcast:f", b"\xff\xfe", False)) == (b"\xff\xfe", False)


def test_a_delivery_is_encoded_once_for_all_sockets() -> None:
    delivery = Delivery("pfx:broadcast:f", b"x", True)
    first = v2().frame(delivery)
    assert delivery.cache["ws4redis.v2"] is first
    delivery.data = b"changed"  # a second socket's protocol object reuses the cached frame, it does not re-encode
    assert V2Protocol(prefix="pfx").frame(delivery) is first
    assert LegacyProtocol(None).frame(delivery) == (b"changed", True)


def test_client_publish_envelopes() -> None:
    assert v2().incoming(b'{"type":"publish","data":"hi"}') == Incoming(publish=b"hi")
    assert v2().incoming('{"type":"publish","data":"é"}'.encode()) == Incoming(publish="é".encode())
    assert v2().incoming(b'{"type":"publish","data":{"n":1}}') == Incoming(publish=b'{"n":1}')
    assert v2().incoming(b"\xff\x00binary") == Incoming(publish=b"\xff\x00binary", text=False)
    # A binary frame is published as binary, even when it would parse as an envelope.
    assert v2().incoming(b'{"type":"ping"}', text=False) == Incoming(publish=b'{"type":"ping"}', text=False)


def test_ping_is_answered_with_a_pong_echoing_t() -> None:
    incoming = v2().incoming(b'{"type":"ping","t":1234.5}')
    assert incoming.publish is None
    assert decode(incoming.reply) == {"type": "pong", "t": 1234.5}


def test_resume_is_handed_to_the_connection_which_replays_from_history() -> None:
    incoming = v2().incoming(b'{"type":"resume","since":{"user:chat":"5-0","broadcast:chat":"9-0"}}')
    assert incoming.publish is None and incoming.reply is None
    assert incoming.resume == {"user:chat": "5-0", "broadcast:chat": "9-0"}


def test_envelope_carries_the_stream_id() -> None:
    frame = v2().frame(Delivery("pfx:broadcast:f", b"x", True, "17-0"))
    assert decode(frame)["id"] == "17-0"


def test_presence_events_are_control_messages_on_v2() -> None:
    event = Delivery("pfx:group:red:room", b'{"type":"join","user":"ann","client":"c1"}', True, event=True)
    assert decode(v2().frame(event)) == {
        "type": "join", "channel": "room", "audience": "group", "group": "red", "user": "ann", "client": "c1",
    }


@pytest.mark.parametrize(
    "frame", [b"hello", b"[1,2]", b'{"type":"publish"}', b'{"type":"resume","since":[]}', b'{"type":"dance"}', b"{}"]
)
def test_bad_frames_get_an_error_and_are_never_published(frame: bytes) -> None:
    incoming = v2().incoming(frame)
    assert incoming.publish is None
    assert decode(incoming.reply)["type"] == "error"


def test_the_legacy_heartbeat_string_is_still_echoed() -> None:
    assert v2().incoming(b"--heartbeat--") == Incoming(reply=(b"--heartbeat--", True))


def test_control_messages() -> None:
    protocol = v2()
    assert decode(protocol.control("shutdown", reconnect_in=2000)) == {"type": "shutdown", "reconnect_in": 2000}
    assert decode(protocol.control("revoked")) == {"type": "revoked"}
    assert decode(protocol.control("reconnected")) == {"type": "reconnected"}
    assert decode(protocol.control("welcome", facility="chat")) == {"type": "welcome", "facility": "chat"}
    with pytest.raises(ValueError, match="unknown"):
        protocol.control("bogus")
