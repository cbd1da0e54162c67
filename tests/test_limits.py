"""Limits with clear outcomes, each counted and logged: rate, size, connections, subscriptions, slow consumers."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
import websocket
from django.contrib.sessions.backends.db import SessionStore

from tests.conftest import People, connect, receive_all, refused_status
from tests.servers import UwsgiServer, rss_kb
from tests.test_revocation import assert_closed
from tests.test_websocket import wait_until
from ws4redis.exceptions import CloseCode
from ws4redis.limits import TokenBucket
from ws4redis.publisher import RedisPublisher


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.4) is False  # 0.8 of a token so far
    assert bucket.take(100.5) is True  # one token after half a second at 2/s
    assert bucket.take(110.0) and bucket.take(110.0) and bucket.take(110.0) and not bucket.take(110.0)  # capped


def test_publishing_faster_than_the_rate_closes_only_that_socket(
    uwsgi_factory: Callable[..., UwsgiServer], people: People
) -> None:
    server = uwsgi_factory({"WS4REDIS_PUBLISH_RATE": 1, "WS4REDIS_PUBLISH_BURST": 3})
    listener = connect(server, "/ws/rate?subscribe-broadcast", cookie=people.cookie("bob"))
    flooder = connect(server, "/ws/rate?publish-broadcast", cookie=people.cookie("alice"))
    for i in range(10):
        try:
            flooder.send(f"flood {i}")
        except (websocket.WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
            break
    assert receive_all(listener, 3) == ["flood 0", "flood 1", "flood 2"]
    assert_closed(flooder, CloseCode.RATE_LIMITED)
    assert "published faster than WS4REDIS_PUBLISH_RATE" in server.output()
    RedisPublisher(facility="rate", broadcast=True).publish_message("listener unaffected")
    assert listener.recv() == "listener unaffected"


def test_too_big_message_closes_the_socket_and_is_not_published(
    uwsgi_factory: Callable[..., UwsgiServer], people: People
) -> None:
    server = uwsgi_factory({"WS4REDIS_MAX_MESSAGE_SIZE": 1000})
    listener = connect(server, "/ws/size?subscribe-broadcast", cookie=people.cookie("bob"))
    sender = connect(server, "/ws/size?publish-broadcast", cookie=people.cookie("alice"))
    sender.send("x" * 1000)
    assert listener.recv() == "x" * 1000  # at the limit is fine
    sender.send("y" * 1001)
    assert_closed(sender, CloseCode.MESSAGE_TOO_BIG)
    RedisPublisher(facility="size", broadcast=True).publish_message("next")
    assert listener.recv() == "next"  # the oversized message never arrived


def test_connections_per_user(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory({"WS4REDIS_MAX_CONNECTIONS_PER_USER": 2})
    cookie = people.cookie("alice")
    first = connect(server, "/ws/q?subscribe-user", cookie=cookie)
    connect(server, "/ws/q?subscribe-user", cookie=people.cookie("alice"))
    assert refused_status(server, "/ws/q?subscribe-user", cookie=cookie) == 429
    connect(server, "/ws/q?subscribe-user", cookie=people.cookie("bob"))  # other users are not affected
    first.close()

    def third_accepted() -> bool:
        try:
            connect(server, "/ws/q?subscribe-user", cookie=cookie)
        except websocket.WebSocketBadStatusException:
            return False
        return True

    wait_until(third_accepted)


def test_subscriptions_per_socket(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory({"WS4REDIS_MAX_SUBSCRIPTIONS": 2})
    cookie = people.cookie("alice")
    connect(server, "/ws/s?subscribe-broadcast&subscribe-user", cookie=cookie)
    assert refused_status(server, "/ws/s?subscribe-broadcast&subscribe-user&subscribe-session", cookie=cookie) == 403


def test_socket_closes_when_its_session_expires(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory({"WS4REDIS_WAKE_INTERVAL": 0.2})
    cookie = people.cookie("alice")
    session = SessionStore(session_key=People.session_key(cookie))
    session.set_expiry(2)
    session.save()
    ws = connect(server, "/ws/exp?subscribe-user", cookie=cookie)
    ws.settimeout(10)
    assert_closed(ws)


def small_buffer_client(server: UwsgiServer, path: str, cookie: str) -> websocket.WebSocket:
    """A client with a tiny receive buffer that will not read: the server's queue for it must fill up."""
    return websocket.create_connection(
        f"ws://127.0.0.1:{server.port}{path}", cookie=cookie, timeout=10,
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),),
    )


@pytest.mark.parametrize("policy", ["close", "drop-oldest"])
def test_slow_consumer_is_bounded_and_never_silent(
    uwsgi_factory: Callable[..., UwsgiServer], people: People, policy: str
) -> None:
    queue_bytes = 200_000
    server = uwsgi_factory({"WS4REDIS_QUEUE_BYTES": queue_bytes, "WS4REDIS_SLOW_CONSUMER": policy})
    (worker,) = server.workers()
    good = connect(server, "/ws/slow?subscribe-broadcast", cookie=people.cookie("bob"))
    slow = small_buffer_client(server, "/ws/slow?subscribe-broadcast", people.cookie("alice"))
    before = rss_kb(worker)
    publisher = RedisPublisher(facility="slow", broadcast=True)
    payload = "p" * 1000
    received = []
    for i in range(5000):
        publisher.publish_message(f"{i:05d}{payload}")
        if i % 100 == 99:  # the good client keeps up, the slow one never reads
            received += receive_all(good, 100)
    assert [int(m[:5]) for m in received] == list(range(5000))
    growth = rss_kb(worker) - before
    print(f"\nslow consumer ({policy}): worker RSS growth {growth} KB while 5,000 x 1 KB were published")
    assert growth < 20_000  # bounded: the queue limit is 200 KB, not the 5 MB published
    log = server.output()
    if policy == "close":
        assert "closing slow consumer alice" in log
        assert_closed_after_draining(slow)
    else:
        assert "oldest message(s) for slow consumer alice" in log
        slow.close()


def test_a_stalled_reader_gets_every_message_intact_and_in_order(
    uwsgi_factory: Callable[..., UwsgiServer], people: People
) -> None:
    """Messages the socket buffer cannot take at once (the hub's write stops part-way, then the connection's own
    greenlet waits for room) still arrive whole and in publishing order, and other sockets are not held up."""
    server = uwsgi_factory({"WS4REDIS_QUEUE_BYTES": 16_000_000})
    good = connect(server, "/ws/stall?subscribe-broadcast", cookie=people.cookie("bob"))
    stalled = small_buffer_client(server, "/ws/stall?subscribe-broadcast", people.cookie("alice"))
    publisher = RedisPublisher(facility="stall", broadcast=True)
    sizes = [500 + (i * 7919) % 40_000 for i in range(600)]  # 12 MB: beyond what the socket buffers take (4 MB)
    expected = [f"{i:04d}" + "x" * size for i, size in enumerate(sizes)]
    for message in expected:
        publisher.publish_message(message)
    assert receive_all(good, len(expected)) == expected  # the stalled socket did not hold the others up
    stalled.settimeout(10)
    assert receive_all(stalled, len(expected)) == expected
    stalled.close()


def assert_closed_after_draining(ws: websocket.WebSocket) -> None:
    """Read what the kernel buffered before the close; the stream must then end (not time out)."""
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(10_000):
            if ws.recv() == "":
                raise websocket.WebSocketConnectionClosedException("closed")
    ws.shutdown()
