"""What a hostile client can do, end to end on uWSGI and the gevent server (issue 19; docs/limits.md has the table).

Each test is an attack that worked on the code before it: a run-time ``subscribe`` past the policy a connection
passes, a ping flood that stalled every other socket of the worker.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import websocket

from tests.conftest import People, assert_silent, connect, refused_status
from tests.servers import raw_upgrade
from tests.servers_any import any_server_fixture, gevent_servers_fixture  # noqa: F401  (fixtures)
from ws4redis.exceptions import CloseCode
from ws4redis.publisher import RedisPublisher

POLICY = {
    "WS4REDIS_ALLOWED_CHANNELS": "tests.project.hooks.secret_facilities",
    "WS4REDIS_HOOKS": {
        "club": {"connect": "tests.project.ws_views.only_members"},
        "party": {"connect": "tests.project.ws_views.record_join", "disconnect": "tests.project.ws_views.record_leave"},
    },
}


def v2(server: Any, path: str, **kwargs: Any) -> websocket.WebSocket:
    ws = connect(server, path, subprotocols=["ws4redis.v2"], **kwargs)
    assert json.loads(ws.recv())["type"] == "welcome"
    return ws


def request(ws: websocket.WebSocket, **envelope: Any) -> Any:
    ws.send(json.dumps(envelope))
    return json.loads(ws.recv())


# -- one authorisation path (item 4) -------------------------------------------------------------------------------
def test_runtime_subscribe_is_decided_as_a_connection_to_that_facility(any_server: Callable[..., Any],
                                                                       people: People) -> None:
    """``WS4REDIS_ALLOWED_CHANNELS`` reads ``request.path``: it must see the subscribed facility, not the socket's."""
    server = any_server(POLICY)
    bob, alice = people.cookie("bob"), people.cookie("alice")
    assert refused_status(server, "/ws/secret-x?subscribe-broadcast", cookie=bob) == 403
    sneaky = v2(server, "/ws/a?subscribe-broadcast", cookie=bob)
    assert request(sneaky, type="subscribe", facility="secret-x") == {
        "type": "error", "reason": "secret facilities are alice's", "request": "subscribe", "facility": "secret-x"}
    entitled = v2(server, "/ws/a?subscribe-broadcast", cookie=alice)
    assert request(entitled, type="subscribe", facility="secret-x")["type"] == "subscribed"
    RedisPublisher(facility="secret-x", broadcast=True).publish_message("payroll")
    assert json.loads(entitled.recv())["data"] == "payroll"
    assert request(sneaky, type="ping", t=1) == {"type": "pong", "t": 1}  # the secret never came before it
    assert_silent(sneaky)


def test_runtime_subscribe_runs_the_facility_connect_and_disconnect_hooks(any_server: Callable[..., Any],
                                                                          people: People) -> None:
    server = any_server(POLICY)
    assert refused_status(server, "/ws/club?subscribe-broadcast") == 403  # anonymous: the club's connect hook
    anonymous = v2(server, "/ws/a?subscribe-broadcast")
    assert request(anonymous, type="subscribe", facility="club") == {
        "type": "error", "reason": "members only (connect hook)", "request": "subscribe", "facility": "club"}
    joins = connect(server, "/ws/party-joins?subscribe-broadcast", cookie=people.cookie("bob"))
    alice = v2(server, "/ws/a?subscribe-broadcast", cookie=people.cookie("alice"))
    assert request(alice, type="subscribe", facility="party")["type"] == "subscribed"
    assert joins.recv() == "joined: alice"  # the hook was given the party facility's subscription
    assert request(alice, type="unsubscribe", facility="party")["type"] == "unsubscribed"
    assert joins.recv() == "left: alice"
    assert request(alice, type="subscribe", facility="party")["type"] == "subscribed"
    assert joins.recv() == "joined: alice"
    alice.close()
    assert joins.recv() == "left: alice"  # closing the socket leaves every facility it joined


# -- fairness (item 3) ----------------------------------------------------------------------------------------------
def masked(opcode: int, payload: bytes = b"") -> bytes:
    """One masked client frame (mask key zero: the payload goes out as is) with a short payload."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


class Flooder:
    """A raw client writing one frame over and over as fast as the socket takes it, reading (and dropping) the
    server's answers in a thread so its pongs never fill the buffer; records the server's close code."""

    def __init__(self, port: int, path: str, frame: bytes, *, subprotocol: str | None = None) -> None:
        self.sock = raw_upgrade(port, path, subprotocol=subprotocol)
        self.chunk = frame * max(1, 8192 // len(frame))
        self.close_code: int | None = None
        self.frames_sent = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Drop what the server sends, keeping the stream's tail: the close frame, when one comes, is the last frame
        (parsing every pong in Python would cost this process the GIL the measurements need)."""
        tail = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            tail = (tail + data)[-128:]
        for start in range(len(tail) - 4, -1, -1):  # b"\x88" <length> <code> <reason>, ending the stream
            if tail[start] == 0x88 and tail[start + 1] == len(tail) - start - 2:
                self.close_code = int.from_bytes(tail[start + 2:start + 4], "big")
                return

    def run(self, seconds: float) -> None:
        """Flood until ``seconds`` passed or the server closed the connection."""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and self._reader.is_alive():  # until the server closed its side
                self.sock.sendall(self.chunk)
                self.frames_sent += 1
        except OSError:
            pass
        self.sock.close()
        self._reader.join(5)


def delivery_delays(server: Any, flood: Callable[[], None], *, facility: str) -> list[float]:
    """Publish a timestamped broadcast every 20 ms while ``flood`` runs; how late each reached a bystander socket
    (``time.monotonic`` is one clock for every process of the machine)."""
    bystander = connect(server, f"/ws/{facility}?subscribe-broadcast", timeout=15)
    publisher = RedisPublisher(facility=facility, broadcast=True)
    stop = threading.Event()
    delays: list[float] = []
    sent = 0

    def receive() -> None:
        while True:
            data = bystander.recv()
            if data == "end":
                return
            delays.append(time.monotonic() - float(data))

    receiving = threading.Thread(target=receive)
    receiving.start()
    flooding = threading.Thread(target=flood)
    flooding.start()
    while flooding.is_alive():
        publisher.publish_message(repr(time.monotonic()))
        sent += 1
        stop.wait(0.02)
    publisher.publish_message("end")
    receiving.join(15)
    assert len(delays) == sent
    return delays


def test_a_ping_flood_is_closed_1008_and_delays_nobody(any_server: Callable[..., Any]) -> None:
    """Masked empty pings as fast as one client can write, reconnecting whenever it is closed: each of its sockets is
    closed with 1008 once past ``WS4REDIS_CONTROL_BURST``, and another socket's deliveries are not delayed."""
    server = any_server()
    codes: list[int | None] = []

    def flood() -> None:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            flooder = Flooder(server.port, "/ws/flood?subscribe-broadcast", masked(0x9))
            flooder.run(deadline - time.monotonic())
            codes.append(flooder.close_code)

    delays = delivery_delays(server, flood, facility="fair-a")
    print(f"delays: median {statistics.median(delays) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms, "
          f"n={len(delays)}, flooding sockets closed: {len(codes)}")
    assert set(codes[:-1]) == {CloseCode.POLICY_VIOLATION} and len(codes) > 5  # the last one may be cut short
    assert statistics.median(delays) < 0.5 and max(delays) < 0.5, (statistics.median(delays), max(delays))


def test_v2_requests_are_rate_limited_too(any_server: Callable[..., Any]) -> None:
    server = any_server()
    for frame in (json.dumps({"type": "ping"}).encode(), b"not an envelope", json.dumps({"type": "resume"}).encode()):
        flooder = Flooder(server.port, "/ws/flood?subscribe-broadcast", masked(0x1, frame), subprotocol="ws4redis.v2")
        flooder.run(4.0)
        assert flooder.close_code == CloseCode.POLICY_VIOLATION, frame


def test_an_unlimited_flood_still_yields_to_other_sockets(any_server: Callable[..., Any]) -> None:
    """Without the control-frame limit, a flooding socket's greenlet still yields after a bounded amount of work
    per round: before, another socket's deliveries were delayed by seconds (median 11 s in issue 19)."""
    server = any_server({"WS4REDIS_CONTROL_RATE": None})
    flooder = Flooder(server.port, "/ws/flood?subscribe-broadcast", masked(0x9))
    delays = delivery_delays(server, lambda: flooder.run(3.0), facility="fair-b")
    assert flooder.close_code is None and flooder.frames_sent > 100  # served the whole time
    print(f"delays: median {statistics.median(delays) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms, n={len(delays)}")
    assert statistics.median(delays) < 0.5 and max(delays) < 0.5, (statistics.median(delays), max(delays))


def test_runtime_subscriptions_to_history_keep_each_sockets_own_positions(any_server: Callable[..., Any]) -> None:
    """Sockets of a facility without history share one empty ``Recovery``; a run-time subscribe to a facility with
    history must give the socket its own, or one socket's positions decide what the others are sent."""
    server = any_server({"WS4REDIS_HISTORY": {"hist-*": {"size": 100, "ttl": 60}}, "WS4REDIS_RESUME_WAIT": 0})
    first, second = v2(server, "/ws/plain?subscribe-broadcast"), v2(server, "/ws/plain?subscribe-broadcast")
    for ws in (first, second):
        assert request(ws, type="subscribe", facility="hist-a")["type"] == "subscribed"
        assert request(ws, type="resume", since={})["type"] in ("recovered", "not_recovered")  # tracks hist-a
    RedisPublisher(facility="hist-a", broadcast=True).publish_message("one")
    RedisPublisher(facility="hist-a", broadcast=True).publish_message("two")
    for ws in (first, second):
        assert [json.loads(ws.recv())["data"] for _ in range(2)] == ["one", "two"]
    newcomer = connect(server, "/ws/plain?subscribe-broadcast", subprotocols=["ws4redis.v2"])
    assert "offsets" not in json.loads(newcomer.recv())  # nothing of the others' history leaked into its welcome
    assert request(first, type="unsubscribe", facility="hist-a")["type"] == "unsubscribed"
    RedisPublisher(facility="hist-a", broadcast=True).publish_message("three")
    assert json.loads(second.recv())["data"] == "three"
