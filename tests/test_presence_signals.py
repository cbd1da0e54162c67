"""Online/offline signals (``ws4redis.presence_signals``) over two uWSGI instances of two workers on one Redis.

The receivers (``tests.project.presence_receivers``) fire inside the workers and record into a Redis list, which is
what these tests observe.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket
from django.conf import settings
from django.test import override_settings

from tests.conftest import People, connect
from tests.project.presence_receivers import SIGNALS_KEY
from tests.servers import RedisServer, UwsgiServer, tcp_connections
from tests.test_websocket import wait_until
from ws4redis import presence
from ws4redis.presence_signals import facility_keys

TTL, GRACE, SWEEP = 3, 1.5, 0.2  # TTL: the kill test's; the others use 30 (a starved worker must not expire)
# Longer graces where a test reconnects: on a loaded machine a reconnect can take a second or more, and a gap longer
# than the grace is (rightly) an offline.
TABS_GRACE, FLAPS_GRACE = 3.0, 5.0
# A facility per test: a signal of one test's last socket, sent after the grace, must not land in the next test's list.
PRESENCE = {
    "room-tabs": {"ttl": 30, "grace": TABS_GRACE}, "room-flaps": {"ttl": 30, "grace": FLAPS_GRACE},
    "room-*": {"ttl": TTL}, "slow": {"ttl": 30}, "broken": {"ttl": 30}, "anon": {"ttl": 30},
    "reach": {"ttl": 30},  # tests/test_reach.py, on the same pair of servers
}


# A prefix of its own: every server of the test session with presence takes turns at the deployment-wide sweep, and
# one without the receivers app would claim (and "send" to nobody) the offline signals these tests wait for.
PREFIX = "sig"


def overrides() -> dict[str, Any]:
    return {
        "WS4REDIS_PREFIX": PREFIX,
        "WS4REDIS_PRESENCE": PRESENCE,
        "WS4REDIS_PRESENCE_GRACE": GRACE,
        "WS4REDIS_PRESENCE_SWEEP": SWEEP,
        "WS4REDIS_POLICY": "permissive",
        "INSTALLED_APPS": [*settings.INSTALLED_APPS, "tests.project.presence_receivers.Receivers"],
    }


@pytest.fixture
def pair(uwsgi_factory: Callable[..., UwsgiServer]) -> Iterator[tuple[UwsgiServer, UwsgiServer]]:
    """Two instances of two workers each (the env only tells them apart), and the same settings in this process."""
    first = uwsgi_factory(overrides(), processes=2, env={"WS4REDIS_TEST_INSTANCE": "a"})
    second = uwsgi_factory(overrides(), processes=2, env={"WS4REDIS_TEST_INSTANCE": "b"})
    with override_settings(WS4REDIS_PRESENCE=PRESENCE, WS4REDIS_PRESENCE_GRACE=GRACE, WS4REDIS_PREFIX=PREFIX):
        yield first, second


def v2(server: UwsgiServer, path: str, cookie: str | None = None) -> websocket.WebSocket:
    """A v2 socket whose welcome arrived: by then its connect was recorded in Redis (it is, before the welcome)."""
    ws = connect(server, path, cookie=cookie, subprotocols=["ws4redis.v2"])
    assert json.loads(ws.recv())["type"] == "welcome"
    return ws


def recorded(redis_server: RedisServer, facility: str) -> list[dict[str, Any]]:
    """The signals the workers' receivers recorded for ``facility``, in order."""
    client = redis_server.client()
    try:
        entries = [json.loads(raw) for raw in client.lrange(SIGNALS_KEY, 0, -1)]
    finally:
        client.close()
    return [entry for entry in entries if entry["facility"] == facility]


def kinds(redis_server: RedisServer, facility: str) -> list[tuple[str, str, str]]:
    return [(e["kind"], e["facility"], e["who"]) for e in recorded(redis_server, facility)]


def leaving(redis_server: RedisServer, facility: str, who: str) -> float | None:
    client = redis_server.client()
    try:
        score = client.zscore(facility_keys(facility)[2], who)
    finally:
        client.close()
    return None if score is None else float(score)


def test_three_tabs_over_two_instances_go_online_once_and_offline_once_after_the_grace(
    pair: tuple[UwsgiServer, UwsgiServer], people: People, redis_server: RedisServer,
) -> None:
    a, b = pair
    cookie = people.cookie("alice")
    online = [("user_online", "room-tabs", "alice")]
    tabs = [v2(a, "/ws/room-tabs?subscribe-broadcast", cookie), v2(b, "/ws/room-tabs?subscribe-broadcast", cookie),
            v2(a, "/ws/room-tabs?subscribe-user", cookie)]
    wait_until(lambda: kinds(redis_server, "room-tabs") == online)
    assert presence.count("room-tabs") == 3 and presence.users("room-tabs") == ["alice"]
    assert presence.count("room-tabs", "broadcast") == 2 and presence.users("room-tabs", "user", "alice") == ["alice"]
    tabs[0].close()
    tabs[1].close()
    wait_until(lambda: presence.count("room-tabs") == 1)
    tabs[2].close()
    wait_until(lambda: presence.count("room-tabs") == 0)
    gone = time.monotonic()
    assert leaving(redis_server, "room-tabs", "u:alice") is not None  # an offline is pending...
    reopened = v2(b, "/ws/room-tabs?subscribe-broadcast", cookie)  # ...and a reload within the grace cancels it
    assert time.monotonic() - gone < TABS_GRACE, "the machine was too slow to reopen within the grace"
    assert leaving(redis_server, "room-tabs", "u:alice") is None
    closed = time.time()  # before the close: the server's disconnect, and so the grace, starts after it
    reopened.close()
    wait_until(lambda: len(recorded(redis_server, "room-tabs")) == 2)
    offline_at = recorded(redis_server, "room-tabs")[1]["at"]
    assert TABS_GRACE - 0.05 <= offline_at - closed <= TABS_GRACE + 3 * SWEEP + 2.0  # upper bound: a loaded CI machine
    time.sleep(3 * SWEEP)  # not synchronisation: the time in which a duplicate would have appeared
    assert kinds(redis_server, "room-tabs") == [*online, ("user_offline", "room-tabs", "alice")]


def test_a_sigkilled_workers_user_goes_offline_once_after_ttl_and_grace(
    pair: tuple[UwsgiServer, UwsgiServer], uwsgi_factory: Callable[..., UwsgiServer], people: People,
    redis_server: RedisServer,
) -> None:
    _, other = pair
    doomed = uwsgi_factory(overrides(), processes=2, env={"WS4REDIS_TEST_INSTANCE": "kill"})
    watcher = v2(other, "/ws/room-kill?subscribe-broadcast", people.cookie("bob"))  # the other instance stays up
    alice = v2(doomed, "/ws/room-kill?subscribe-broadcast", people.cookie("alice"))
    wait_until(lambda: len(kinds(redis_server, "room-kill")) == 2)
    assert sorted(kinds(redis_server, "room-kill")) == [
        ("user_online", "room-kill", "alice"), ("user_online", "room-kill", "bob"),
    ]
    port = alice.sock.getsockname()[1]
    (worker,) = [pid for pid in doomed.workers() if (doomed.port, port) in tcp_connections(pid)]
    os.kill(worker, signal.SIGKILL)  # a worker of a server this test started: it sends nothing
    killed = time.time()
    wait_until(lambda: len(recorded(redis_server, "room-kill")) == 3, timeout=TTL + GRACE + 5)
    offline = recorded(redis_server, "room-kill")[2]
    assert (offline["kind"], offline["who"]) == ("user_offline", "alice")
    # The entry expires TTL after its last refresh (every TTL/3, give or take a wake-up), the offline GRACE later.
    assert TTL / 3 + GRACE <= offline["at"] - killed <= TTL + GRACE + 2.5
    assert offline["pid"] != worker
    # What every instance reads (one Redis): alice is gone, bob is still there.
    assert presence.users("room-kill") == ["bob"] and presence.count("room-kill") == 1
    assert presence.offline("room-kill", ["alice", "bob"]) == ["alice"]
    time.sleep(3 * SWEEP)  # not synchronisation: the time in which a second sweeper would have sent it again
    assert len(recorded(redis_server, "room-kill")) == 3
    watcher.close()


def test_a_thousand_reconnect_flaps_within_the_grace_send_no_signal(
    pair: tuple[UwsgiServer, UwsgiServer], people: People, redis_server: RedisServer,
) -> None:
    cookie = people.cookie("carol")
    ws = v2(pair[0], "/ws/room-flaps?subscribe-broadcast", cookie)
    wait_until(lambda: kinds(redis_server, "room-flaps") == [("user_online", "room-flaps", "carol")])
    started = time.monotonic()
    for flap in range(1000):
        ws.close()
        ws.shutdown()
        ws = v2(pair[flap % 2 - 1], "/ws/room-flaps?subscribe-broadcast", cookie)
    flaps = time.monotonic() - started
    assert kinds(redis_server, "room-flaps") == [("user_online", "room-flaps", "carol")]
    ws.close()
    wait_until(lambda: len(recorded(redis_server, "room-flaps")) == 2)
    assert kinds(redis_server, "room-flaps") == [
        ("user_online", "room-flaps", "carol"), ("user_offline", "room-flaps", "carol"),
    ]
    print(f"1,000 flaps in {flaps:.1f}s")


def test_anonymous_sessions_get_session_signals(
    pair: tuple[UwsgiServer, UwsgiServer], redis_server: RedisServer, transactional_db: Any,
) -> None:
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store["visited"] = True
    store.save()
    assert store.session_key is not None
    cookie = f"{settings.SESSION_COOKIE_NAME}={store.session_key}"
    hashed = hashlib.sha256(store.session_key.encode()).hexdigest()[:16]
    first = v2(pair[0], "/ws/anon?subscribe-broadcast", cookie)
    second = v2(pair[1], "/ws/anon?subscribe-broadcast", cookie)
    wait_until(lambda: kinds(redis_server, "anon") == [("session_online", "anon", hashed)])
    v2(pair[0], "/ws/anon?subscribe-broadcast")  # no session at all: nobody to follow, no signal
    first.close()
    second.close()
    wait_until(lambda: len(recorded(redis_server, "anon")) == 2)
    assert kinds(redis_server, "anon") == [("session_online", "anon", hashed), ("session_offline", "anon", hashed)]
    assert store.session_key not in json.dumps(recorded(redis_server, "anon"))


def test_a_slow_receiver_delays_no_delivery_and_a_failing_one_is_logged(
    pair: tuple[UwsgiServer, UwsgiServer], people: People, redis_server: RedisServer,
) -> None:
    from ws4redis.publisher import RedisPublisher

    a, _ = pair
    slow = v2(a, "/ws/slow?subscribe-broadcast", people.cookie("alice"))  # its receiver sleeps 3 s in that worker
    RedisPublisher(facility="slow", broadcast=True).publish_message("right away")
    sent = time.monotonic()
    assert json.loads(slow.recv())["data"] == "right away"
    assert time.monotonic() - sent < 1.0
    assert kinds(redis_server, "slow") == []  # the receiver was still running while the message went out
    broken = v2(a, "/ws/broken?subscribe-broadcast", people.cookie("bob"))
    wait_until(lambda: "a receiver that fails" in a.output())
    assert "receiver" in a.output() and "online u:… on broken failed" in a.output()
    RedisPublisher(facility="broken", broadcast=True).publish_message("still fine")
    assert json.loads(broken.recv())["data"] == "still fine"
    wait_until(lambda: kinds(redis_server, "slow") == [("user_online", "slow", "alice")])


# -- the scripts and the dispatcher in this process, against the real Redis (no uWSGI): fast and exhaustive ---------
DESK = {"desk": {"ttl": 30}}


def test_racing_trackers_and_sweepers_decide_each_transition_exactly_once(redis_server: RedisServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ws4redis.presence_signals import online_tracker, sweep
    from ws4redis.redis_store import get_connection

    # A prefix of its own: the uWSGI servers of the other tests sweep "test:" keys on this Redis every 0.2 s.
    with override_settings(WS4REDIS_PRESENCE=DESK, WS4REDIS_PRESENCE_GRACE=0.3, WS4REDIS_PREFIX="solo"):
        client = get_connection()
        trackers = [online_tracker(["solo:broadcast:desk"], user="dora", session_key=None) for _ in range(40)]
        with ThreadPoolExecutor(8) as pool:  # forty tabs opening at once over eight "workers"
            claims = [t for found in pool.map(lambda t: t.connect(client), trackers) for t in found]  # type: ignore[union-attr]
        assert [(c.online, c.who) for c in claims] == [(True, "u:dora")]
        with ThreadPoolExecutor(8) as pool:
            assert [t for found in pool.map(lambda t: t.disconnect(client), trackers) for t in found] == []  # type: ignore[union-attr]
        wait_until(lambda: (client.zscore(facility_keys("desk")[2], "u:dora") or 1e20) <= time.time(), timeout=5)
        sent: list[Any] = []
        with ThreadPoolExecutor(8) as pool:  # eight sweepers at the moment the offline is due
            assert sum(pool.map(lambda _: sweep(client, send=sent.append), range(8))) == 1
        assert [(t.online, t.who) for t in sent] == [(False, "u:dora")]
        assert presence.count("desk") == 0 and client.smembers("solo:online:facilities") == set()


def test_a_full_queue_drops_signals_counted_and_a_failing_receiver_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import gevent

    from ws4redis import metrics, signals
    from ws4redis.presence_dispatch import Dispatcher, Transition

    got: list[str] = []
    NAMES = ("a", "b", "c", "d", "e")  # noqa: N806

    def record(sender: Any, *, user: str, facility: str, **kwargs: Any) -> None:
        if user in NAMES:  # this dispatcher's; earlier tests' trackers may have left signals in the process's queue
            got.append(user)

    def fail(sender: Any, *, user: str, **kwargs: Any) -> None:
        if user in NAMES:
            raise RuntimeError("receiver bug")

    dropped = metrics.DROPPED.labels("presence_signal")
    before = dropped._value.get()
    signals.user_online.connect(record)
    signals.user_online.connect(fail)
    try:
        dispatcher = Dispatcher(size=3)
        for name in NAMES:
            dispatcher.emit(Transition(online=True, facility="desk", who=f"u:{name}"))
        assert dropped._value.get() - before == 2
        assert "dropped the online u:… on desk signal" in caplog.text
        while dispatcher.waiting:
            gevent.sleep(0.01)  # lets the dispatcher greenlet run in this (non-gevent) process
        gevent.sleep(0)
        assert got == ["a", "b", "c"]
        ours = [r for r in caplog.records if r.name == "ws4redis.presence_dispatch" and r.exc_info]
        assert [str(r.exc_info[1]) for r in ours] == ["receiver bug"] * 3  # type: ignore[index]
        assert "online u:… on desk failed" in ours[0].getMessage()
    finally:
        signals.user_online.disconnect(record)
        signals.user_online.disconnect(fail)


def test_the_sweep_command_sends_a_dead_workers_offline_from_outside_the_web_workers(
    redis_server: RedisServer,
) -> None:
    from io import StringIO

    from django.core.management import call_command

    from ws4redis import signals
    from ws4redis.presence_signals import online_tracker
    from ws4redis.redis_store import get_connection

    got: list[tuple[str, str]] = []

    def record(sender: Any, *, user: str, facility: str, **kwargs: Any) -> None:
        got.append((user, facility))

    signals.user_offline.connect(record)
    # A prefix of its own (the servers of the other tests sweep "test:"); a ttl that is over at once: a dead worker.
    try:
        with override_settings(WS4REDIS_PRESENCE={"desk": {"ttl": 0.05}}, WS4REDIS_PRESENCE_GRACE=0.1,
                               WS4REDIS_PREFIX="cron"):
            tracker = online_tracker(["cron:broadcast:desk"], user="erin", session_key=None)
            assert tracker is not None and tracker.connect(get_connection())
            out = StringIO()
            call_command("ws4redis_sweep", stdout=out)  # expired, moved to leaving; the grace is not over yet
            assert got == [] and "0 offline" in out.getvalue()
            wait_until(lambda: presence.count("desk") == 0)
            time.sleep(0.15)  # not synchronisation: the grace that must pass before the offline is due at all
            call_command("ws4redis_sweep", stdout=out)
            assert got == [("erin", "desk")] and "1 offline" in out.getvalue()
    finally:
        signals.user_offline.disconnect(record)
