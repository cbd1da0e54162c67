"""The gevent + wsproto transport end to end: ``manage.py runwebsocket`` as a real subprocess, real Redis, real clients.

Every transport-independent behaviour of ``tests/test_websocket.py`` (audiences with two users' real session
cookies, kept messages, heartbeat echo, refusals 400/403/404/426, echo suppression, the 1,000-message burst to 100
sockets) runs here again unchanged: this module overrides the ``uwsgi_factory`` fixture with the gevent server, so
those tests take a ``GeventServer`` where they took a ``UwsgiServer``. Below them, what only this transport does:
close codes (1009, 1007, 1002, 1001 with a reconnect delay), pings both ways, dead peers dropped.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from tests import test_websocket as _core
from tests.conftest import People, connect, refused_status
from tests.gevent_servers import GeventServer
from tests.servers import RedisServer, raw_upgrade, stop_all

# The core's end-to-end tests, collected again in this module, where ``uwsgi_factory`` is the gevent server.
_SKIPPED_HERE = {
    # uWSGI's own process model, not the transport's: the gevent server's equivalents are tested below.
    "test_more_than_1024_sockets_on_one_worker",
}
globals().update({
    name: value for name, value in vars(_core).items()
    if name.startswith("test_") and callable(value) and name not in _SKIPPED_HERE
})


@pytest.fixture(scope="session")
def gevent_factory(redis_server: RedisServer, django_db_setup: Any,
                   django_db_blocker: Any) -> Iterator[Callable[..., GeventServer]]:
    """Start (once per distinct configuration) a gevent server of the test project; stopped by pid at the end."""
    import json

    started: dict[str, GeventServer] = {}

    def start(overrides: dict[str, Any] | None = None, **kwargs: Any) -> GeventServer:
        key = json.dumps([overrides or {}, kwargs], sort_keys=True, default=str)
        if key not in started:
            started[key] = GeventServer(overrides=overrides, **kwargs)
        return started[key]

    yield start
    stop_all(started.values())


@pytest.fixture(scope="session")
def uwsgi_factory(gevent_factory: Callable[..., GeventServer]) -> Callable[..., GeventServer]:
    """The core tests' server factory, answered by the gevent server in this module."""
    return gevent_factory


# -- what only the wsproto transport does ------------------------------------------------------------------------
def close_frame(ws: websocket.WebSocket) -> tuple[int, str]:
    """Read until the server's close frame; its code and reason. The client socket is closed afterwards."""
    ws.settimeout(5)
    try:
        while True:
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else 1005
                return code, frame.data[2:].decode()
    finally:
        ws.shutdown()


def test_too_big_message_closes_with_1009(gevent_factory: Callable[..., GeventServer], people: People) -> None:
    server = gevent_factory({"WS4REDIS_MAX_MESSAGE_SIZE": 1000})
    ws = connect(server, "/ws/big?subscribe-user&publish-user", cookie=people.cookie("alice"))
    ws.send("x" * 1000)  # exactly the limit passes (echo is suppressed, so nothing comes back)
    ws.send("x" * 1001)
    assert close_frame(ws)[0] == 1009


def test_too_big_fragmented_message_closes_before_it_is_complete(gevent_factory: Callable[..., GeventServer],
                                                                   people: People) -> None:
    server = gevent_factory({"WS4REDIS_MAX_MESSAGE_SIZE": 1000})
    ws = connect(server, "/ws/big?subscribe-user&publish-user", cookie=people.cookie("alice"))
    ws.send_frame(websocket.ABNF.create_frame("x" * 600, websocket.ABNF.OPCODE_TEXT, fin=0))
    ws.send_frame(websocket.ABNF.create_frame("x" * 600, websocket.ABNF.OPCODE_CONT, fin=0))
    assert close_frame(ws)[0] == 1009  # no final frame was needed to know


def test_invalid_utf8_in_a_text_message_closes_with_1007(gevent_factory: Callable[..., GeventServer],
                                                         people: People) -> None:
    ws = connect(gevent_factory(), "/ws/utf?subscribe-user&publish-user", cookie=people.cookie("alice"))
    ws.send_frame(websocket.ABNF.create_frame(b"ok \xff\xfe", websocket.ABNF.OPCODE_TEXT))
    assert close_frame(ws)[0] == 1007


def test_unmasked_client_frame_is_refused_with_1002(gevent_factory: Callable[..., GeventServer],
                                                    people: People) -> None:
    ws = connect(gevent_factory(), "/ws/mask?subscribe-user&publish-user", cookie=people.cookie("alice"))
    ws.sock.sendall(b"\x81\x08unmasked")  # FIN + text, length 8, and no mask bit: no client may send this
    assert close_frame(ws)[0] == 1002


def test_binary_messages_stay_binary(gevent_factory: Callable[..., GeventServer], people: People) -> None:
    cookie = people.cookie("alice")
    server = gevent_factory()
    sender = connect(server, "/ws/bin?publish-user", cookie=cookie)
    receiver = connect(server, "/ws/bin?subscribe-user", cookie=cookie)
    sender.send_binary(b"\x00\xff\xfe")
    opcode, data = receiver.recv_data()
    assert (opcode, data) == (websocket.ABNF.OPCODE_BINARY, b"\x00\xff\xfe")


def test_ping_is_answered(gevent_factory: Callable[..., GeventServer]) -> None:
    ws = connect(gevent_factory(), "/ws/ping?subscribe-broadcast")
    ws.ping(b"are you there")
    opcode, frame = ws.recv_data_frame(True)
    assert (opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, b"are you there")


def test_idle_peer_that_stops_answering_pings_is_dropped(gevent_factory: Callable[..., GeventServer]) -> None:
    server = gevent_factory({"WS4REDIS_PING_INTERVAL": 0.5, "WS4REDIS_PING_TIMEOUT": 0.5,
                             "WS4REDIS_WAKE_INTERVAL": 0.2})
    sock = raw_upgrade(server.port, "/ws/idle?subscribe-broadcast")
    received = b""
    started = time.monotonic()
    while chunk := sock.recv(4096):
        received += chunk
    sock.close()
    assert received[:1] == b"\x89"  # we were pinged first (opcode 9, FIN), then dropped without an answer
    assert time.monotonic() - started < 5


def test_peer_answering_pings_stays_connected(gevent_factory: Callable[..., GeventServer]) -> None:
    server = gevent_factory({"WS4REDIS_PING_INTERVAL": 0.5, "WS4REDIS_PING_TIMEOUT": 0.5,
                             "WS4REDIS_WAKE_INTERVAL": 0.2})
    ws = connect(server, "/ws/alive?subscribe-broadcast")
    pings = 0
    deadline = time.monotonic() + 2.5  # several ping rounds
    ws.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            opcode, _frame = ws.recv_data_frame(True)  # websocket-client answers each ping here
            pings += opcode == websocket.ABNF.OPCODE_PING
        except websocket.WebSocketTimeoutException:
            pass
    assert pings >= 2
    _core.publish("alive", "still here", broadcast=True)
    ws.settimeout(5)
    assert ws.recv() == "still here"


def test_sigterm_closes_with_1001_and_a_jittered_reconnect_delay(redis_server: RedisServer, people: People) -> None:
    server = GeventServer(extra=["--reconnect-window", "3", "--grace", "3"])
    try:
        cookie = people.cookie("alice")
        legacy = [connect(server, "/ws/bye?subscribe-broadcast", cookie=cookie) for _ in range(10)]
        v2 = connect(server, "/ws/bye?subscribe-broadcast", cookie=cookie, subprotocols=["ws4redis.v2"])
        assert '"welcome"' in v2.recv()
        server.proc.send_signal(15)
        assert '"type":"shutdown"' in v2.recv()
        delays = set()
        for ws in [*legacy, v2]:
            code, reason = close_frame(ws)
            assert code == 1001
            assert reason.startswith("reconnect_in=")
            delays.add(int(reason.split("=")[1]))
        assert all(500 <= d <= 3000 for d in delays)
        assert len(delays) > 1  # jittered: not everyone comes back at the same moment
        assert server.proc.wait(10) == 0
    finally:
        server.stop()


def test_several_workers_share_the_port(redis_server: RedisServer, people: People) -> None:
    server = GeventServer(processes=3)
    try:
        _core.wait_until(lambda: len(server.workers()) == 3)  # the port listens before the workers are forked
        sockets = [connect(server, "/ws/wide?subscribe-broadcast") for _ in range(60)]
        assert _core.publish("wide", "to every worker", broadcast=True) >= 1
        assert all(ws.recv() == "to every worker" for ws in sockets)
        for ws in sockets:
            ws.close()
    finally:
        server.stop()
    assert server.proc.returncode == 0


def test_websocket_only_server_answers_404_for_pages(redis_server: RedisServer) -> None:
    server = GeventServer(with_django=False)
    try:
        assert _core.raw_get(server, "/", {}) == 404
        assert refused_status(server, "/ws/f?subscribe-user") == 403
    finally:
        server.stop()


@pytest.mark.skipif(os.environ.get("WS4REDIS_AUTOBAHN") != "1", reason="Autobahn takes minutes: WS4REDIS_AUTOBAHN=1")
def test_autobahn_finds_no_failure_on_the_wsproto_transport(tmp_path: Any) -> None:
    """RFC 6455 conformance of the transport (bench/autobahn/run.py; needs the Python 2.7 wstest, see docs)."""
    import json
    import subprocess
    import sys

    from tests.servers import ROOT

    subprocess.run([sys.executable, str(ROOT / "bench/autobahn/run.py"), "--agents", "gevent-transport",
                    "--out", str(tmp_path), "--summary", str(tmp_path / "summary.md")], check=True, timeout=1500)
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    (cases,) = index.values()
    passing = ("OK", "NON-STRICT", "INFORMATIONAL")
    failed = {case: r["behavior"] for case, r in cases.items() if r["behavior"] not in passing}
    assert failed == {}
