"""Several facilities on one v2 socket: subscribe/unsubscribe at run time, authorised as at connect."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import websocket

from tests.conftest import People, assert_silent, connect
from tests.servers import UwsgiServer
from ws4redis.protocol import V2Protocol
from ws4redis.publisher import RedisPublisher


def v2(server: UwsgiServer, path: str, **kwargs: Any) -> websocket.WebSocket:
    ws = connect(server, path, subprotocols=["ws4redis.v2"], **kwargs)
    assert json.loads(ws.recv())["type"] == "welcome"
    return ws


def recv(ws: websocket.WebSocket) -> Any:
    return json.loads(ws.recv())


def publish(facility: str, message: str, **audience: Any) -> None:
    RedisPublisher(facility=facility, **audience).publish_message(message)


def test_one_socket_switches_facilities(server: UwsgiServer, people: People) -> None:
    ws = v2(server, "/ws/a?subscribe-broadcast", cookie=people.cookie("alice"))
    ws.send(json.dumps({"type": "subscribe", "facility": "b", "audiences": ["broadcast", "user"]}))
    assert recv(ws) == {"type": "subscribed", "facility": "b", "audiences": ["broadcast", "user"]}
    publish("b", "b for all", broadcast=True)
    assert recv(ws)["data"] == "b for all"
    publish("b", "b for alice", users=["alice"])
    message = recv(ws)
    assert (message["channel"], message["audience"], message["data"]) == ("b", "user", "b for alice")
    publish("a", "a still", broadcast=True)
    assert recv(ws)["data"] == "a still"  # both facilities on one socket
    ws.send(json.dumps({"type": "unsubscribe", "facility": "a"}))
    assert recv(ws) == {"type": "unsubscribed", "facility": "a", "audiences": []}
    publish("a", "a gone", broadcast=True)
    publish("b", "b after", broadcast=True)
    assert recv(ws)["data"] == "b after"  # published after "a gone": had "a gone" come, it would be first
    assert_silent(ws)


def test_subscribe_is_authorised_like_a_connection(server: UwsgiServer, people: People) -> None:
    anonymous = v2(server, "/ws/a?subscribe-broadcast")
    anonymous.send(json.dumps({"type": "subscribe", "facility": "b", "audiences": ["user"]}))
    assert recv(anonymous) == {"type": "error", "reason": "subscribe-user needs a logged-in user",
                               "request": "subscribe", "facility": "b"}
    anonymous.send(json.dumps({"type": "subscribe", "facility": "bad:name"}))
    answer = recv(anonymous)
    assert (answer["type"], answer["request"]) == ("error", "subscribe")
    anonymous.send(json.dumps({"type": "subscribe", "facility": "b", "audiences": ["everyone"]}))
    assert "unknown audience" in recv(anonymous)["reason"]
    publish("b", "not for you", users=["alice"])
    anonymous.send(json.dumps({"type": "ping", "t": 1}))
    assert recv(anonymous) == {"type": "pong", "t": 1}  # still open, and nothing of b arrived


def test_allowed_channels_hook_narrows_runtime_subscriptions(uwsgi_factory: Callable[..., UwsgiServer],
                                                              people: People) -> None:
    server = uwsgi_factory({"WS4REDIS_ALLOWED_CHANNELS": "tests.project.hooks.only_broadcast"})
    ws = v2(server, "/ws/a?subscribe-broadcast", cookie=people.cookie("bob"))
    ws.send(json.dumps({"type": "subscribe", "facility": "b", "audiences": ["broadcast", "user"]}))
    assert recv(ws) == {"type": "subscribed", "facility": "b", "audiences": ["broadcast"]}


def test_new_subscription_gets_the_kept_message(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory({"WS4REDIS_EXPIRE": 60})
    RedisPublisher(facility="kept-b", broadcast=True).publish_message("kept for newcomers", expire=60)
    ws = v2(server, "/ws/a?subscribe-broadcast", cookie=people.cookie("carol"))
    ws.send(json.dumps({"type": "subscribe", "facility": "kept-b"}))
    assert recv(ws)["type"] == "subscribed"
    assert recv(ws)["data"] == "kept for newcomers"


def test_legacy_sockets_publish_subscribe_envelopes_as_data(server: UwsgiServer, people: People) -> None:
    """The legacy protocol has no control messages: a subscribe envelope is a payload like any other."""
    ws = connect(server, "/ws/legacy-multi?subscribe-broadcast&publish-broadcast&echo", cookie=people.cookie("alice"))
    envelope = json.dumps({"type": "subscribe", "facility": "b"})
    ws.send(envelope)
    assert ws.recv() == envelope


def test_protocol_parses_subscribe_and_unsubscribe() -> None:
    protocol = V2Protocol(prefix=None)
    change = protocol.incoming(b'{"type":"subscribe","facility":"b","audiences":["user","user"]}').change
    assert change is not None and (change.kind, change.facility, change.audiences) == ("subscribe", "b", ("user",))
    default = protocol.incoming(b'{"type":"subscribe","facility":"b"}').change
    assert default is not None and default.audiences == ("broadcast",)
    everything = protocol.incoming(b'{"type":"unsubscribe","facility":"b"}').change
    assert everything is not None and everything.audiences == ()
    bad = protocol.incoming(b'{"type":"subscribe","audiences":"user"}')
    assert bad.change is None and bad.reply is not None and b"facility" in bad.reply[0]
