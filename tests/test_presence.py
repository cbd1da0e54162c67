"""Presence and join/leave (``ws4redis.presence``) on real uWSGI and Redis."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import People, assert_silent, connect
from tests.servers import UwsgiServer
from tests.test_websocket import wait_until
from ws4redis.presence import presence

PRESENCE = {"room": {"ttl": 30, "events": True}, "lobby-*": {"ttl": 2}}
OVERRIDES: dict[str, Any] = {"WS4REDIS_PRESENCE": PRESENCE}


def v2(server: UwsgiServer, path: str, cookie: str | None = None) -> Any:
    """A v2 socket whose welcome has arrived: by then its presence entry is written (it is written before)."""
    ws = connect(server, path, cookie=cookie, subprotocols=["ws4redis.v2"])
    assert json.loads(ws.recv())["type"] == "welcome"
    return ws


def labels(facility: str, **kwargs: Any) -> list[tuple[str, int]]:
    with override_settings(WS4REDIS_PRESENCE=PRESENCE):
        return [(p.label, p.connections) for p in presence(facility, **kwargs)]


def test_presence_shows_two_users_then_one_after_a_socket_closes(
    uwsgi_factory: Callable[..., UwsgiServer], people: People,
) -> None:
    server = uwsgi_factory(OVERRIDES)
    alice = v2(server, "/ws/room?subscribe-broadcast", people.cookie("alice"))
    v2(server, "/ws/room?subscribe-broadcast", people.cookie("alice"))  # a second tab
    bob = v2(server, "/ws/room?subscribe-broadcast", people.cookie("bob"))
    assert labels("room") == [("alice", 2), ("bob", 1)]
    with override_settings(WS4REDIS_PRESENCE=PRESENCE):
        (first, _) = presence("room")
    assert first.user == "alice" and first.session is None and first.since.timestamp() <= time.time()
    bob.close()
    # Alice's socket is told (an event to await), and by then bob's entry is gone.
    leave = json.loads(alice.recv())
    while leave["type"] != "leave" or leave["user"] != "bob":
        leave = json.loads(alice.recv())
    assert leave["channel"] == "room" and leave["audience"] == "broadcast"
    assert labels("room") == [("alice", 2)]


def test_join_and_leave_reach_v2_subscribers_only(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory(OVERRIDES)
    watcher = v2(server, "/ws/room?subscribe-broadcast", people.cookie("carol"))
    legacy = connect(server, "/ws/room?subscribe-broadcast", cookie=people.cookie("carol"))
    joined = v2(server, "/ws/room?subscribe-broadcast", people.cookie("bob"))
    events = [json.loads(watcher.recv()) for _ in range(3)]  # its own join, the legacy socket's, then bob's
    assert [(e["type"], e["user"]) for e in events] == [("join", "carol"), ("join", "carol"), ("join", "bob")]
    joined.close()
    assert (json.loads(watcher.recv())["type"], "bob") == ("leave", "bob")
    assert_silent(legacy)  # join/leave are v2 control messages, never legacy data


def test_anonymous_sockets_are_counted_without_revealing_sessions(uwsgi_factory: Callable[..., UwsgiServer]) -> None:
    server = uwsgi_factory(OVERRIDES)
    v2(server, "/ws/lobby-anon?subscribe-broadcast")
    v2(server, "/ws/lobby-anon?subscribe-broadcast")
    found = labels("lobby-anon")
    assert sorted(found) == [("anonymous", 1), ("anonymous", 1)]  # no session: each socket on its own


def test_group_channel_presence(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory(OVERRIDES)
    v2(server, "/ws/room?subscribe-group", people.cookie("alice"))  # red
    v2(server, "/ws/room?subscribe-group", people.cookie("carol"))  # red
    v2(server, "/ws/room?subscribe-group", people.cookie("bob"))  # blue
    assert labels("room", audience="group", name="red") == [("alice", 1), ("carol", 1)]
    assert labels("room") == []  # nobody subscribed to the broadcasts


def test_a_killed_workers_entries_expire_within_the_ttl(
    uwsgi_factory: Callable[..., UwsgiServer], people: People,
) -> None:
    # A server of its own: its worker is killed.
    server = uwsgi_factory(OVERRIDES, env={"WS4REDIS_TEST_KILL": "1"})
    v2(server, "/ws/lobby-kill?subscribe-broadcast", people.cookie("alice"))
    v2(server, "/ws/lobby-kill?subscribe-broadcast", people.cookie("bob"))
    assert labels("lobby-kill") == [("alice", 1), ("bob", 1)]
    # Still there after the ttl while the worker lives: the sockets' wake-ups refresh the entries.
    time.sleep(2.5)  # not synchronisation: the time that must pass for expiry to be possible at all
    assert labels("lobby-kill") == [("alice", 1), ("bob", 1)]
    (worker,) = server.workers()
    os.kill(worker, signal.SIGKILL)  # a worker of the server this test started: no leave is ever sent
    killed = time.monotonic()
    wait_until(lambda: labels("lobby-kill") == [], timeout=10)
    assert time.monotonic() - killed <= 2 + 0.5  # within the configured ttl (2 s), give or take a poll


@pytest.mark.parametrize("audience", ["nobody", "group"])
def test_presence_checks_its_arguments(audience: str) -> None:
    with pytest.raises(ValueError):
        presence("room", audience=audience)
