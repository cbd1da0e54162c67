"""Counted publishes and ``if_offline`` (``ws4redis.reach``) over two uWSGI instances of two workers on one Redis."""

from __future__ import annotations

import json
import time

import pytest
import websocket

from tests.conftest import People, assert_silent, connect
from tests.servers import RedisServer, UwsgiServer
from tests.test_presence_signals import pair as pair  # the same two instances of two workers (and settings here)
from tests.test_websocket import wait_until
from ws4redis import presence
from ws4redis.publisher import RedisPublisher
from ws4redis.reach import PROBE_MARK


def v2(server: UwsgiServer, path: str, cookie: str | None = None) -> websocket.WebSocket:
    ws = connect(server, path, cookie=cookie, subprotocols=["ws4redis.v2"])
    assert json.loads(ws.recv())["type"] == "welcome"
    return ws


def test_the_reach_count_is_exact_over_both_instances(
    pair: tuple[UwsgiServer, UwsgiServer], people: People,
) -> None:
    a, b = pair
    # 3 legacy sockets on one instance, 2 on the other, on a facility without presence; alice's 2 tabs on her channel.
    news = [connect(server, "/ws/news?subscribe-broadcast") for server in (a, a, a, b, b)]
    cookie = people.cookie("alice")
    tabs = [v2(a, "/ws/news?subscribe-user", cookie), v2(b, "/ws/news?subscribe-user", cookie)]
    reach = RedisPublisher(facility="news", broadcast=True).publish_counted("to everyone")
    assert (reach.sockets, reach.complete) == (5, True)
    assert reach.expected == reach.answered >= 2  # every worker listening answered (at least one per instance)
    assert [ws.recv() for ws in news] == ["to everyone"] * 5
    both = RedisPublisher(facility="news", broadcast=True, users=["alice"]).publish_counted("to both")
    assert both.sockets == 7 and both.complete
    for ws in news:
        assert ws.recv() == "to both"
        assert_silent(ws, 0.1)  # the probe that followed the message never reaches a socket
    for tab in tabs:
        assert json.loads(tab.recv())["data"] == "to both"
    assert RedisPublisher(facility="nobody-here", broadcast=True).publish_counted("x").sockets == 0
    quiet = RedisPublisher(facility="quiet", broadcast=True)  # nobody listens: what a counted publish costs itself
    started = time.perf_counter()
    for _ in range(50):
        quiet.publish_counted("x")
    alone = (time.perf_counter() - started) / 50
    started = time.perf_counter()
    for _ in range(20):
        RedisPublisher(facility="news", broadcast=True).publish_counted("timed")
    print(f"publish_counted: {alone * 1e3:.2f} ms with no listener, "
          f"{(time.perf_counter() - started) / 20 * 1e3:.2f} ms over 4 workers of 2 instances")
    for ws in news:
        assert [ws.recv() for _ in range(20)] == ["timed"] * 20
    news[0].close()
    wait_until(lambda: RedisPublisher(facility="news", broadcast=True).publish_counted("again").sockets == 4)


def test_a_probe_published_by_a_client_is_only_data_and_writes_nothing(
    pair: tuple[UwsgiServer, UwsgiServer], people: People, redis_server: RedisServer,
) -> None:
    """A client's bytes shaped like a reach probe travel inside ws4redis' envelope: the hubs never take them for a
    probe (no answer is written), and listeners get them as the binary message they are."""
    a, b = pair
    listener = connect(b, "/ws/talk?subscribe-broadcast")
    forger = connect(a, "/ws/talk?subscribe-broadcast&publish-broadcast", cookie=people.cookie("bob"))
    forged = PROBE_MARK + b"0" * 32 + b" " + b"0" * 32
    forger.send_binary(forged)
    forger.send("after the forgery")
    assert listener.recv() == forged  # delivered as the client's data...
    assert listener.recv() == "after the forgery"
    client = redis_server.client()
    assert client.keys("*reach*") == []  # ...and made no hub write anything
    client.close()


def test_if_offline_is_called_for_an_absent_user_and_not_for_a_present_one(
    pair: tuple[UwsgiServer, UwsgiServer], people: People,
) -> None:
    v2(pair[1], "/ws/reach?subscribe-broadcast", people.cookie("alice"))  # alice is here, on any of her channels
    calls: list[str] = []
    count = RedisPublisher(facility="reach", users=["alice", "bob"]).publish_message("hello", if_offline=calls.append)
    assert calls == ["bob"]
    assert count == 0  # alice listens to the broadcasts only: present on the facility, though not on her channel
    calls.clear()
    RedisPublisher(facility="reach", users=["alice"]).publish_message("hello again", if_offline=calls.append)
    assert calls == []
    listener = connect(pair[0], "/ws/reach?subscribe-broadcast")
    with pytest.raises(ValueError, match="user audience"):  # refused before anything is published
        RedisPublisher(facility="reach", broadcast=True).publish_message("x", if_offline=calls.append)
    with pytest.raises(ValueError, match="no WS4REDIS_PRESENCE"):
        RedisPublisher(facility="elsewhere", users=["bob"]).publish_message("x", if_offline=calls.append)
    RedisPublisher(facility="reach", broadcast=True).publish_message("after the refusals")
    assert listener.recv() == "after the refusals"
    assert presence.offline("reach", ["bob", "alice", "bob"]) == ["bob"]
