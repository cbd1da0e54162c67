"""The idle wheel (``ws4redis.runtime.gevent.idle``): the periodic duties of idle websockets spread over the interval
(issue 22).

End to end on the gevent server (real Redis, real sockets): sockets that connect in a burst are pinged spread over
the wake interval, not all at once; a silent peer is still pinged and dropped after the ping timeout, and one that
answers stays (tests/test_gevent_transport.py). Then the wheel itself on a real gevent loop: every socket gets one
turn per interval, and an empty wheel keeps no timer running.
"""

from __future__ import annotations

import selectors
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest

from tests.gevent_servers import GeventServer
from tests.servers import RedisServer, raw_upgrade

# Silence of 1.5 s is pinged; every socket has a turn each second: with one timer per socket, sockets opened together
# are all pinged on their second turn, together.
_INTERVALS = {"WS4REDIS_PING_INTERVAL": 1.5, "WS4REDIS_PING_TIMEOUT": 10, "WS4REDIS_WAKE_INTERVAL": 1.0}


@pytest.fixture
def spread_server(redis_server: RedisServer, django_db_setup: Any, django_db_blocker: Any) -> Iterator[GeventServer]:
    server = GeventServer(overrides=_INTERVALS, with_django=False)
    yield server
    server.stop()


@pytest.fixture(params=["gevent", "uwsgi"])
def parked_server(request: pytest.FixtureRequest) -> Any:
    """The same intervals on both gevent runtimes: uWSGI's upgraded sockets are parked by the same transport."""
    if request.param == "gevent":
        return request.getfixturevalue("spread_server")
    return request.getfixturevalue("uwsgi_factory")(_INTERVALS)


def test_sockets_opened_together_are_pinged_spread_over_the_interval(spread_server: GeventServer) -> None:
    started = time.monotonic()
    socks = [raw_upgrade(spread_server.port, "/ws/spread?subscribe-broadcast") for _ in range(64)]
    opened = time.monotonic() - started
    first_ping: dict[int, float] = {}
    selector = selectors.DefaultSelector()
    try:
        for i, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + 10
        while len(first_ping) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(0.5):
                i = key.data
                data = key.fileobj.recv(64)  # type: ignore[union-attr]
                assert data[:1] == b"\x89", data  # a ping (FIN, opcode 9): nothing else is sent to a quiet socket
                first_ping[i] = time.monotonic()
                selector.unregister(key.fileobj)
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    assert len(first_ping) == len(socks)
    spread = max(first_ping.values()) - min(first_ping.values())
    assert spread > opened + 0.4, (spread, opened)  # dealt over the one-second interval, not the connect burst


def _read_close_code(sock: socket.socket) -> int | None:
    """Read until the server's close frame (unmasked, so its code is at bytes 2-3 of the frame) or the end."""
    data = b""
    sock.settimeout(10)
    while chunk := sock.recv(4096):
        data += chunk
        i = 0
        while i + 2 <= len(data):
            opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
            if opcode == 8 and i + 4 <= len(data):
                return int(struct.unpack("!H", data[i + 2:i + 4])[0])
            i += 2 + length
    return None


def test_pongs_taken_without_a_greenlet_still_spend_the_control_allowance(spread_server: GeventServer) -> None:
    """A parked socket's pongs are read by the event loop itself (no greenlet): unsolicited ones, one per read, are
    still counted, and past ``WS4REDIS_CONTROL_BURST`` the socket is closed with 1008."""
    sock = raw_upgrade(spread_server.port, "/ws/pongs?subscribe-broadcast")
    pong = bytes([0x8A, 0x84]) + b"\0\0\0\0" + b"pong"  # masked with a zero key
    try:
        for _ in range(120):  # one frame per write: each is its own read on a parked socket
            try:
                sock.sendall(pong)
            except OSError:
                break
            time.sleep(0.002)
        assert _read_close_code(sock) == 1008
    finally:
        sock.close()


def _parked_after_ping(port: int, path: str) -> socket.socket:
    """A socket that waited for the server's first ping (sent on the wheel's turn, so the socket is parked: what it
    sends next is read by the event loop itself), with nothing else received."""
    sock = raw_upgrade(port, path)
    sock.settimeout(10)
    ping = sock.recv(64)
    assert ping[:1] == b"\x89", ping
    return sock


@pytest.mark.parametrize("tail", [
    pytest.param(bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack("!H", 1000), id="a close in the same read"),
    pytest.param(bytes([0x88, 0x82, 1, 2]), id="the first bytes of a close"),
])
def test_what_follows_a_pong_in_the_same_read_is_not_lost(parked_server: Any, tail: bytes) -> None:
    """The pong that answers a ping, glued to the start of the next frame: the pong is taken by the event loop, the
    rest must reach wsproto whole. Here the next frame is a close (completed by a second write when split): the
    server must answer it with 1000, as it does when the close comes alone."""
    sock = _parked_after_ping(parked_server.port, "/ws/glued?subscribe-broadcast")
    try:
        sock.sendall(bytes([0x8A, 0x80]) + b"\0\0\0\0" + tail)
        if len(tail) == 4:
            # The rest of the mask key (1, 2, 3, 4) and the code 1000 masked with it. Not an event to await: the pause
            # only makes the two writes likely to be two reads on the server (either way the close must arrive).
            time.sleep(0.05)
            sock.sendall(bytes([3, 4, 0x03 ^ 1, 0xE8 ^ 2]))
        assert _read_close_code(sock) == 1000
    finally:
        sock.close()


def test_a_malformed_pong_on_a_parked_socket_is_refused_by_wsproto(parked_server: Any) -> None:
    """A "pong" with a reserved bit set (no extension was agreed) is not a pong: it goes to wsproto, which closes the
    websocket with 1002 (protocol error), as for any socket."""
    sock = _parked_after_ping(parked_server.port, "/ws/badpong?subscribe-broadcast")
    try:
        sock.sendall(bytes([0xCA, 0x80]) + b"\0\0\0\0")
        assert _read_close_code(sock) == 1002
    finally:
        sock.close()


class _Member:
    """A socket's stand-in for the wheel alone: records its turns."""

    def __init__(self) -> None:
        self.turns: list[float] = []

    def on_wheel(self, now: float, wall: float) -> None:
        self.turns.append(now)


def test_every_member_gets_one_turn_per_interval_and_an_empty_wheel_stops() -> None:
    from ws4redis.runtime.gevent.idle import SLOTS, IdleWheel

    wheel = IdleWheel(gevent.get_hub().loop, 0.32)
    members = [_Member() for _ in range(SLOTS * 2)]
    slots = [wheel.add(m) for m in members]
    assert len(wheel) == len(members)
    gevent.sleep(0.32 * 2 + 0.1)
    counts = sorted(len(m.turns) for m in members)
    assert counts[0] >= 2 and counts[-1] <= 3, counts
    firsts = sorted(m.turns[0] for m in members)
    assert firsts[-1] - firsts[0] > 0.32 * 0.8  # the first turns are dealt over the interval
    for m, slot in zip(members, slots, strict=True):
        wheel.remove(m, slot)
        wheel.remove(m, slot)  # idempotent
    assert len(wheel) == 0
    before = [len(m.turns) for m in members]
    gevent.sleep(0.4)
    assert [len(m.turns) for m in members] == before
