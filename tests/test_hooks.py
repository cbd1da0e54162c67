"""Facility hooks (``WS4REDIS_HOOKS``) end to end on real uWSGI and Redis, plus their resolution rules."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tests.conftest import People, assert_silent, connect, refused_status
from tests.servers import UwsgiServer
from tests.test_revocation import assert_closed
from ws4redis.exceptions import CloseCode
from ws4redis.hooks import hooks_for, reset_cache

HOOKS = {
    "WS4REDIS_HOOKS": {
        "loud": {"message": "tests.project.ws_views.shout"},
        "fragile": {"message": "tests.project.ws_views.explode"},
        "slow": {"message": "tests.project.ws_views.dawdle"},
        "club": {"connect": "tests.project.ws_views.only_members"},
        "party": {"connect": "tests.project.ws_views.record_join", "disconnect": "tests.project.ws_views.record_leave"},
    },
    "WS4REDIS_HOOK_TIMEOUT": 3.0,
}


@pytest.fixture
def hooked(uwsgi_factory: Callable[..., UwsgiServer]) -> UwsgiServer:
    return uwsgi_factory(HOOKS)


def test_message_hook_rewrites_and_drops_client_messages(hooked: UwsgiServer, people: People) -> None:
    alice = connect(hooked, "/ws/loud?subscribe-broadcast&publish-broadcast&echo", cookie=people.cookie("alice"))
    bob = connect(hooked, "/ws/loud?subscribe-broadcast", cookie=people.cookie("bob"))
    alice.send("hello")
    assert bob.recv() == "alice: HELLO"
    assert alice.recv() == "alice: HELLO"  # echo: the transformed message, as everybody got it
    alice.send("spam")  # dropped by the hook (None)
    alice.send("after")
    assert bob.recv() == "alice: AFTER"  # in order: nothing came between, so "spam" was never published


def test_message_hook_that_raises_closes_only_its_socket(hooked: UwsgiServer, people: People) -> None:
    victim = connect(hooked, "/ws/fragile?subscribe-broadcast&publish-broadcast&echo", cookie=people.cookie("alice"))
    survivor = connect(hooked, "/ws/fragile?subscribe-broadcast&publish-broadcast&echo", cookie=people.cookie("bob"))
    victim.send("fine")
    assert victim.recv() == "fine"
    assert survivor.recv() == "fine"
    victim.send("boom")
    assert_closed(victim, CloseCode.INTERNAL_ERROR)
    survivor.send("still here")
    assert survivor.recv() == "still here"


def test_message_hook_failure_is_told_to_a_v2_client(hooked: UwsgiServer, people: People) -> None:
    import json

    ws = connect(hooked, "/ws/fragile?subscribe-broadcast&publish-broadcast", cookie=people.cookie("alice"),
                 subprotocols=["ws4redis.v2"])
    assert json.loads(ws.recv())["type"] == "welcome"
    ws.send(json.dumps({"type": "publish", "data": "boom"}))
    assert json.loads(ws.recv()) == {"type": "error", "reason": "internal error"}


def test_slow_hook_blocks_only_its_own_socket(hooked: UwsgiServer, people: People) -> None:
    slow = connect(hooked, "/ws/slow?subscribe-broadcast&publish-broadcast&echo", cookie=people.cookie("alice"))
    fast = connect(hooked, "/ws/loud?subscribe-broadcast&publish-broadcast&echo", cookie=people.cookie("bob"),
                   timeout=10)
    slow.send("forever")  # sleeps 30 s inside the hook (cooperatively), then the 3 s hook timeout ends it
    started = time.monotonic()
    fast.send("quick")
    assert fast.recv() == "bob: QUICK"
    assert time.monotonic() - started < 1.0  # the other socket's hook did not wait for the slow one
    slow.settimeout(10)
    assert_closed(slow, CloseCode.INTERNAL_ERROR)  # WS4REDIS_HOOK_TIMEOUT closed the slow socket


def test_connect_hook_may_refuse_before_the_upgrade(hooked: UwsgiServer, people: People) -> None:
    assert refused_status(hooked, "/ws/club?subscribe-broadcast") == 403
    member = connect(hooked, "/ws/club?subscribe-broadcast", cookie=people.cookie("carol"))
    member.ping()


def test_connect_and_disconnect_hooks_record_who_comes_and_goes(hooked: UwsgiServer, people: People) -> None:
    watcher = connect(hooked, "/ws/party-joins?subscribe-broadcast")
    guest = connect(hooked, "/ws/party?subscribe-broadcast", cookie=people.cookie("bob"))
    assert watcher.recv() == "joined: bob"
    guest.close()
    assert watcher.recv() == "left: bob"
    assert_silent(watcher)


# -- resolution (no servers) ------------------------------------------------------------------------------------------
def test_facility_entry_wins_over_the_wildcard_per_kind() -> None:
    reset_cache()
    config = {"*": {"message": "tests.project.ws_views.explode", "disconnect": "tests.project.ws_views.record_leave"},
              "loud": {"message": "tests.project.ws_views.shout"}}
    with override_settings(WS4REDIS_HOOKS=config):
        loud = hooks_for("loud")
        other = hooks_for("other")
    assert loud.message is not None and loud.message.__name__ == "shout"
    assert loud.disconnect is not None and loud.disconnect.__name__ == "record_leave"
    assert other.message is not None and other.message.__name__ == "explode"
    assert other.connect is None


@pytest.mark.parametrize("config", [
    {"x": {"message": "tests.project.ws_views.no_such_hook"}},
    {"x": {"mesage": "tests.project.ws_views.shout"}},
    {"x": "tests.project.ws_views.shout"},
])
def test_bad_hook_configuration_fails_loudly(config: dict[str, Any]) -> None:
    reset_cache()
    with override_settings(WS4REDIS_HOOKS=config), pytest.raises(ImproperlyConfigured):
        hooks_for("x")
