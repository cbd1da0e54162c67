"""No per-socket state is shared between sockets (issue 15): what one socket does never changes what another gets.

Idle sockets share objects to save memory (``history.recovery_for``, ``presence.tracker_for``, the wire protocols);
only immutable ones may be shared. The end-to-end test is the report of the issue, on a real uWSGI and Redis.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
import websocket
from django.test import override_settings

from tests.conftest import People, connect
from tests.servers import UwsgiServer
from ws4redis import history, presence, protocol
from ws4redis.publisher import RedisPublisher

HISTORY = {"hist": {"size": 1000, "ttl": 600}}


def _v2(server: UwsgiServer, path: str, cookie: str) -> websocket.WebSocket:
    ws = connect(server, path, cookie=cookie, subprotocols=["ws4redis.v2"])
    assert json.loads(ws.recv())["type"] == "welcome"
    return ws


def _until(ws: websocket.WebSocket, kind: str) -> dict[str, Any]:
    """The next control of type ``kind``, skipping whatever else comes first (all of it a test may not care for)."""
    while True:
        frame: dict[str, Any] = json.loads(ws.recv())
        if frame["type"] == kind:
            return frame


def test_one_sockets_resume_does_not_swallow_anothers_broadcasts(
    uwsgi_factory: Callable[..., UwsgiServer], people: People
) -> None:
    server = uwsgi_factory({"WS4REDIS_HISTORY": HISTORY})
    alice = _v2(server, "/ws/plain?subscribe-broadcast", people.cookie("alice"))
    bob = _v2(server, "/ws/plain?subscribe-broadcast", people.cookie("bob"))
    carol = _v2(server, "/ws/plain?subscribe-broadcast", people.cookie("carol"))
    alice.send(json.dumps({"type": "subscribe", "facility": "hist", "audiences": ["user", "broadcast"]}))
    assert _until(alice, "subscribed")["audiences"] == ["broadcast", "user"]
    bob.send(json.dumps({"type": "subscribe", "facility": "hist", "audiences": ["broadcast"]}))
    assert _until(bob, "subscribed")["audiences"] == ["broadcast"]
    alice.send(json.dumps({"type": "resume", "since": {"user:hist": "0-0", "broadcast:hist": "0-0"}}))
    _until(alice, "not_recovered")  # plain has no history; hist's two streams were replayed (nothing in them)
    with override_settings(WS4REDIS_HISTORY=HISTORY):
        RedisPublisher(facility="hist", users=["alice"]).publish_message("for alice")
        broadcast = RedisPublisher(facility="hist", broadcast=True)
        for i in range(5):
            broadcast.publish_message(f"b{i}")
        RedisPublisher(facility="plain", broadcast=True).publish_message("marker")
    expected_alice = ["for alice", "b0", "b1", "b2", "b3", "b4", "marker"]
    assert [json.loads(alice.recv())["data"] for _ in expected_alice] == expected_alice
    assert [json.loads(bob.recv())["data"] for _ in range(6)] == ["b0", "b1", "b2", "b3", "b4", "marker"]
    assert json.loads(carol.recv())["data"] == "marker"  # carol listens to plain only


# -- the shared empties are values: nothing a socket does can change them ----------------------------------------
@override_settings(WS4REDIS_HISTORY=HISTORY, WS4REDIS_PRESENCE={"room": {"ttl": 30}})
def test_the_shared_empty_recovery_and_tracker_cannot_be_changed() -> None:
    empty = history.recovery_for(["test:broadcast:plain"])
    assert empty is history.recovery_for(["test:broadcast:other"])  # shared: that is the memory saving
    assert not empty.enabled
    # Asking about a history channel answers without recording it anywhere.
    assert empty.fresh("test:broadcast:hist", "5-0") is True
    assert empty.fresh("test:broadcast:hist", "4-0") is True
    assert not empty.enabled and empty is history.recovery_for(())
    with pytest.raises((AttributeError, TypeError, dataclasses.FrozenInstanceError)):
        empty.pending = True  # type: ignore[misc]
    # A socket that needs positions gets its own object, which the others never see.
    own = history.own_recovery(empty, ["test:broadcast:hist"])
    assert own is not empty and own.enabled and own.fresh("test:broadcast:hist", "5-0")
    assert own.fresh("test:broadcast:hist", "4-0") is False
    assert history.own_recovery(own, ["test:broadcast:hist"]) is own
    assert not history.recovery_for(["test:broadcast:plain"]).enabled

    none = presence.tracker_for(["test:broadcast:plain"], user="alice", session_key="k")
    assert none is presence.tracker_for(["test:broadcast:x"], user="bob", session_key=None)
    assert not none.channels and none.client_id == ""
    with pytest.raises((AttributeError, TypeError, dataclasses.FrozenInstanceError)):
        none.channels = {"c": (1, False)}  # type: ignore[misc]
    assert isinstance(none.channels, type(none.channels)) and len(none.channels) == 0


def test_protocol_objects_shared_between_sockets_hold_no_state() -> None:
    """``protocol_for`` hands the same object to every socket of a subprotocol: it must be a value."""
    for name in (None, "ws4redis.v2"):
        proto = protocol.protocol_for(name, heartbeat="--heartbeat--")
        assert proto is protocol.protocol_for(name, heartbeat="--heartbeat--")
        assert dataclasses.is_dataclass(proto) and type(proto).__dataclass_params__.frozen  # type: ignore[attr-defined]
