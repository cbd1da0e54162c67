"""Facility hooks (``WS4REDIS_HOOKS``) under ASGI, on a real uvicorn: the same hooks and outcomes as on uWSGI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from tests.asgi_servers import AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)
from tests.conftest import People, assert_silent, connect, refused_status
from tests.test_hooks import HOOKS
from tests.test_revocation import assert_closed
from ws4redis.exceptions import CloseCode

SLOW_CONNECT = {
    "lingering": {"connect": "tests.project.ws_views.linger"},
    "stuck": {"message": "tests.project.ws_views.linger"},
}


@pytest.fixture
def hooked(asgi_servers: Callable[..., AsgiServer]) -> AsgiServer:
    hooks = {**HOOKS["WS4REDIS_HOOKS"], **SLOW_CONNECT}  # type: ignore[dict-item]
    return asgi_servers("uvicorn", {**HOOKS, "WS4REDIS_HOOKS": hooks, "WS4REDIS_HOOK_TIMEOUT": 1.5})


def test_message_hook_rewrites_and_drops_client_messages(hooked: AsgiServer, people: People) -> None:
    alice = connect(hooked, "/ws/loud?subscribe-broadcast&publish-broadcast&echo",  # type: ignore[arg-type]
                    cookie=people.cookie("alice"))
    bob = connect(hooked, "/ws/loud?subscribe-broadcast", cookie=people.cookie("bob"))  # type: ignore[arg-type]
    alice.send("hello")
    assert bob.recv() == "alice: HELLO"
    assert alice.recv() == "alice: HELLO"
    alice.send("spam")  # dropped by the hook
    alice.send("after")
    assert bob.recv() == "alice: AFTER"


def test_a_failing_hook_closes_its_socket_and_tells_a_v2_client(hooked: AsgiServer, people: People) -> None:
    legacy = connect(hooked, "/ws/fragile?subscribe-broadcast&publish-broadcast",  # type: ignore[arg-type]
                     cookie=people.cookie("alice"))
    told = connect(hooked, "/ws/fragile?subscribe-broadcast&publish-broadcast",  # type: ignore[arg-type]
                   cookie=people.cookie("bob"), subprotocols=["ws4redis.v2"])
    assert json.loads(told.recv())["type"] == "welcome"
    told.send(json.dumps({"type": "publish", "data": "boom"}))
    assert json.loads(told.recv()) == {"type": "error", "reason": "internal error"}
    assert_closed(told, CloseCode.INTERNAL_ERROR)
    legacy.send("boom")
    assert_closed(legacy, CloseCode.INTERNAL_ERROR)


def test_a_slow_hook_holds_only_its_own_socket(hooked: AsgiServer, people: People) -> None:
    slow = connect(hooked, "/ws/slow?subscribe-broadcast&publish-broadcast&echo",  # type: ignore[arg-type]
                   cookie=people.cookie("alice"))
    fast = connect(hooked, "/ws/loud?subscribe-broadcast&publish-broadcast&echo",  # type: ignore[arg-type]
                   cookie=people.cookie("bob"))
    slow.send("forever")  # the hook sleeps 30 s; WS4REDIS_HOOK_TIMEOUT (1.5 s) closes the socket
    started = time.monotonic()
    fast.send("quick")
    assert fast.recv() == "bob: QUICK"
    assert time.monotonic() - started < 1.0
    assert_closed(slow, CloseCode.INTERNAL_ERROR)


def test_connect_hook_refuses_and_connect_disconnect_hooks_run(hooked: AsgiServer, people: People) -> None:
    assert refused_status(hooked, "/ws/club?subscribe-broadcast") == 403  # type: ignore[arg-type]
    connect(hooked, "/ws/club?subscribe-broadcast", cookie=people.cookie("carol")).ping()  # type: ignore[arg-type]
    watcher = connect(hooked, "/ws/party-joins?subscribe-broadcast")  # type: ignore[arg-type]
    guest = connect(hooked, "/ws/party?subscribe-broadcast", cookie=people.cookie("bob"))  # type: ignore[arg-type]
    assert watcher.recv() == "joined: bob"
    guest.close()
    assert watcher.recv() == "left: bob"
    assert_silent(watcher)


def test_a_slow_connect_hook_is_refused_at_the_timeout_and_holds_no_other_handshake(
    hooked: AsgiServer, people: People
) -> None:
    """WS4REDIS_HOOK_TIMEOUT bounds the connect hook as under gevent: past it the handshake is answered 500, and
    while the hook still runs (a thread cannot be interrupted) every other handshake goes on."""
    results: list[int] = []
    slow = threading.Thread(target=lambda: results.append(
        refused_status(hooked, "/ws/lingering?subscribe-broadcast")  # type: ignore[arg-type]
    ))
    started = time.monotonic()
    slow.start()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # handshakes while the slow hook runs: none waits behind it
        began = time.monotonic()
        connect(hooked, "/ws/quick?subscribe-broadcast", cookie=people.cookie("bob")).close()  # type: ignore[arg-type]
        assert time.monotonic() - began < 0.5
    slow.join(10)
    assert results == [500]
    assert time.monotonic() - started < 3.0  # the 1.5 s timeout, not the hook's 6 s


def test_slow_hooks_in_every_worker_thread_hold_no_other_socket_s_redis_work(
    hooked: AsgiServer, people: People
) -> None:
    """Message hooks that wait on something slow fill the default executor's threads (min(32, cpus + 4)); a socket
    that opens meanwhile (kept messages) and a client's publish need Redis, not a thread: neither waits for them."""
    stuck = [
        connect(hooked, "/ws/stuck?publish-broadcast", cookie=people.cookie("alice"))  # type: ignore[arg-type]
        for _ in range(12)
    ]
    for ws in stuck:
        ws.send("wait")  # each holds a worker thread for 6 s (the socket gives up at the 1.5 s timeout)
    started = time.monotonic()
    listener = connect(hooked, "/ws/free?subscribe-broadcast", cookie=people.cookie("bob"))  # type: ignore[arg-type]
    talker = connect(hooked, "/ws/free?publish-broadcast", cookie=people.cookie("carol"))  # type: ignore[arg-type]
    talker.send("not held")
    assert listener.recv() == "not held"
    assert time.monotonic() - started < 1.0
