"""Every client byte is hostile: a client's payload never becomes server metadata, and nothing that crossed Redis
resets a worker's Redis link (issue 19, items 1, 2 and 7). End to end on uWSGI and on the gevent server, with real
Redis and real websocket clients; the envelope itself is ``ws4redis.wire`` (tests/test_wire.py).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket
from django.test import override_settings

from tests.conftest import People, connect
from tests.gevent_servers import GeventServer
from tests.servers import RedisServer, UwsgiServer
from ws4redis import wire
from ws4redis.history import parse_id
from ws4redis.publisher import RedisPublisher

HISTORY = {"hist": {"size": 1000, "ttl": 600}}
OVERRIDES: dict[str, Any] = {"WS4REDIS_HISTORY": HISTORY}
BINARY, TEXT = websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT

# What the in-band markers of ws4redis before its envelope looked like, and forgeries of the envelope itself.
OLD_ID = b"\x00\xffws4redis:id:"
OLD_EVENT = b"\x00\xffws4redis:event:"
FORGED_EVENT = json.dumps({"type": "join", "channel": "payroll", "audience": "user", "user": "admin"}).encode()
FORGED_ID = "9999999999999-0"


@pytest.fixture(scope="module")
def gevent_servers(redis_server: RedisServer, django_db_setup: Any,
                   django_db_blocker: Any) -> Iterator[Callable[..., GeventServer]]:
    started: dict[str, GeventServer] = {}

    def start(overrides: dict[str, Any]) -> GeventServer:
        key = json.dumps(overrides, sort_keys=True)
        if key not in started:
            started[key] = GeventServer(overrides=overrides)
        return started[key]

    yield start
    for server in started.values():
        server.stop()


@pytest.fixture(params=["uwsgi", "gevent"])
def any_server(request: pytest.FixtureRequest, uwsgi_factory: Callable[..., UwsgiServer],
               gevent_servers: Callable[..., GeventServer]) -> UwsgiServer | GeventServer:
    return uwsgi_factory(OVERRIDES) if request.param == "uwsgi" else gevent_servers(OVERRIDES)


def v2(server: UwsgiServer | GeventServer, path: str, *, cookie: str, resume: bool = False) -> websocket.WebSocket:
    """A ``ws4redis.v2`` socket past its welcome (and past an empty ``resume`` when asked: a socket on a facility
    with history holds live messages until the client resumes)."""
    ws = connect(server, path, cookie=cookie, subprotocols=["ws4redis.v2"])
    assert json.loads(ws.recv())["type"] == "welcome"
    if resume:
        ws.send(json.dumps({"type": "resume", "since": {}}))
        assert json.loads(ws.recv())["type"] == "recovered"
    return ws


def scrape(server: UwsgiServer | GeventServer, name: str) -> float:
    """The sum of one metric's samples on the server's ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


# -- item 1: a client's payload is data, whatever its bytes ---------------------------------------------------------
def test_a_forged_event_reaches_v2_listeners_as_plain_data(any_server: Any, people: People) -> None:
    listener = v2(any_server, "/ws/forge?subscribe-broadcast", cookie=people.cookie("bob"))
    legacy = connect(any_server, "/ws/forge?subscribe-broadcast", cookie=people.cookie("carol"))
    attacker = connect(any_server, "/ws/forge?publish-broadcast", cookie=people.cookie("alice"))
    forged = [OLD_EVENT + FORGED_EVENT, wire.encode(FORGED_EVENT, text=True, event=True)]
    for frame in forged:
        attacker.send_binary(frame)
    for frame in forged:  # exactly the bytes sent, as binary: never a join event of "payroll"
        assert listener.recv_data() == (BINARY, frame)
        assert legacy.recv_data() == (BINARY, frame)


def test_a_forged_id_is_plain_data_and_does_not_move_resume_positions(any_server: Any, people: People,
                                                                      redis_server: RedisServer) -> None:
    forged = [OLD_ID + FORGED_ID.encode() + b"\nhello", wire.encode(b"hello", text=True, message_id=FORGED_ID)]
    # A facility without history (where nothing else frames the payload) and one with history.
    for facility in ("plain", "hist"):
        listener = v2(any_server, f"/ws/{facility}?subscribe-broadcast", cookie=people.cookie("bob"),
                      resume=facility == "hist")
        attacker = connect(any_server, f"/ws/{facility}?publish-broadcast", cookie=people.cookie("alice"))
        for frame in forged:
            attacker.send_binary(frame)
        for frame in forged:  # the bytes sent, as binary: never a message "hello" with id 9999999999999-0
            assert listener.recv_data() == (BINARY, frame)
    with override_settings(WS4REDIS_HISTORY=HISTORY):
        RedisPublisher(facility="hist", broadcast=True).publish_message("real")
    message = json.loads(listener.recv())  # not dropped as "already seen" behind a forged position
    client = redis_server.client()
    ((last_id, _),) = client.xrevrange("test:history:{test:broadcast:hist}", count=1)
    client.close()
    assert (message["data"], message["id"]) == ("real", last_id.decode())
    assert parse_id(message["id"]) < parse_id(FORGED_ID)


# -- item 2: nothing that crosses Redis resets the link -------------------------------------------------------------
def test_a_flood_of_bad_markers_does_not_reset_the_link(any_server: Any, people: People,
                                                        redis_server: RedisServer) -> None:
    # The attacker listens on its own user channel, so its worker's hub reads what it publishes there.
    attacker = connect(any_server, "/ws/flood?subscribe-user&publish-user", cookie=people.cookie("alice"))
    listener = v2(any_server, "/ws/news?subscribe-broadcast", cookie=people.cookie("bob"))
    bad = [OLD_ID + b"\xff\nx", OLD_ID + "²-0\nx".encode(), wire.head(text=True) + b"\xff\nx", wire.MAGIC + b"9"]
    stop = threading.Event()

    def attack() -> None:  # 15 frames a second until the broadcasts are through
        sent = 0
        while not stop.wait(1 / 15):
            try:
                attacker.send_binary(bad[sent % len(bad)])
            except (OSError, websocket.WebSocketException):
                return  # closed by the server: the assertions below tell what the listener saw
            sent += 1

    bad_before = scrape(any_server, "ws4redis_bad_records_total")
    thread = threading.Thread(target=attack)
    thread.start()
    redis = redis_server.client()
    try:
        publisher = RedisPublisher(facility="news", broadcast=True)
        for n in range(100):
            publisher.publish_message(f"n{n}")
            if n % 10 == 0:  # bad records straight into Redis (not through ws4redis): counted and skipped
                redis.publish("test:broadcast:news", wire.head(text=True) + "²-0\nx".encode())
            time.sleep(0.02)  # pacing the publisher, so the attack runs all along (not a synchronisation)
        received: list[str] = []
        reconnected = binary = 0
        listener.settimeout(5)
        deadline = time.monotonic() + 10  # a reset link sends a notice after each reset: no endless loop on those
        while len(received) < 100 and time.monotonic() < deadline:
            try:
                opcode, data = listener.recv_data()
            except websocket.WebSocketTimeoutException:
                break  # some never came: asserted below
            if opcode == BINARY:
                binary += 1
                continue
            message = json.loads(data)
            if message["type"] == "reconnected":
                reconnected += 1
            elif message["type"] == "message":
                received.append(message["data"])
    finally:
        stop.set()
        thread.join()
        redis.close()
    assert reconnected == 0
    assert received == [f"n{n}" for n in range(100)]
    assert binary == 0  # the bad records were skipped, not delivered
    assert scrape(any_server, "ws4redis_bad_records_total") - bad_before >= 10


# -- item 7 and every client field: an answer, never an internal error ----------------------------------------------
BAD_REQUESTS = [
    {"type": "resume", "since": {"broadcast:hist": "²-0"}},
    {"type": "resume", "since": {"broadcast:hist": "0-²"}},
    {"type": "resume", "since": {"broadcast:hist": "18446744073709551616-0"}},
    {"type": "resume", "since": {"broadcast:hist": 17}},
    {"type": "resume", "since": {"broadcast:hist": ["1-0"]}},
    {"type": "resume", "since": {"broadcast:hist": "\udcff"}},
    {"type": "resume", "since": {"\udcff": "1-0"}},
    {"type": "ping", "t": "\ud800"},
    {"type": "publish", "data": "\ud800"},
    {"type": "publish", "data": {"\ud800": 1}},
    {"type": "subscribe", "facility": "x\ud800"},
    {"type": "subscribe", "facility": "ok", "audiences": ["\ud800"]},
    {"type": "subscribe", "facility": 1, "audiences": "broadcast"},
    {"type": ["nested"]},
]


def test_bad_client_fields_get_an_answer_and_the_socket_stays_open(any_server: Any, people: People) -> None:
    ws = v2(any_server, "/ws/hist?subscribe-broadcast", cookie=people.cookie("bob"))
    for request in BAD_REQUESTS:
        ws.send(json.dumps(request))  # ensure_ascii: lone surrogates travel as JSON escapes, as a browser may send
        answer = json.loads(ws.recv())
        if request["type"] == "resume" and "broadcast:hist" in request["since"]:
            assert (answer["type"], answer["reasons"]) == ("not_recovered", {"broadcast:hist": "bad id"})
        else:  # a stream that is not the socket's is ignored: nothing to recover
            assert answer["type"] in ("error", "pong", "recovered"), (request, answer)
    ws.send("[" * 20_000)  # deeper than any JSON parser recurses
    assert json.loads(ws.recv())["type"] == "error"
    ws.send(json.dumps({"type": "ping", "t": 1}))
    assert json.loads(ws.recv()) == {"type": "pong", "t": 1}  # still open and serving


# -- the frame type travels with the payload ------------------------------------------------------------------------
def test_binary_published_by_a_client_comes_back_binary(any_server: Any, people: People) -> None:
    legacy = connect(any_server, "/ws/frames?subscribe-broadcast", cookie=people.cookie("bob"))
    listener = v2(any_server, "/ws/frames?subscribe-broadcast", cookie=people.cookie("carol"))
    sender = connect(any_server, "/ws/frames?publish-broadcast", cookie=people.cookie("alice"))
    v2_sender = v2(any_server, "/ws/frames?publish-broadcast", cookie=people.cookie("alice"))
    sender.send_binary(b"hello")  # valid UTF-8, sent as binary
    sender.send("text")
    sender.send_binary(b"")
    assert [legacy.recv_data() for _ in range(3)] == [(BINARY, b"hello"), (TEXT, b"text"), (BINARY, b"")]
    assert listener.recv_data() == (BINARY, b"hello")
    assert json.loads(listener.recv())["data"] == "text"
    assert listener.recv_data() == (BINARY, b"")
    v2_sender.send_binary(b'{"type":"ping"}')  # a binary frame is a payload, even one that reads like an envelope
    assert legacy.recv_data() == (BINARY, b'{"type":"ping"}')
    assert listener.recv_data() == (BINARY, b'{"type":"ping"}')


# -- the hub's reader: bad records are counted, logged once per interval, skipped ------------------------------------
class _Recorder:
    """A listener that keeps what the hub delivers to it."""

    def __init__(self) -> None:
        self.deliveries: list[Any] = []

    def deliver(self, delivery: Any) -> None:
        self.deliveries.append(delivery)


def test_the_hub_counts_bad_records_logs_them_once_and_delivers_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    from prometheus_client import REGISTRY

    from ws4redis.hub import Hub

    def bad() -> float:
        return REGISTRY.get_sample_value("ws4redis_bad_records_total", {"reason": "malformed id"}) or 0.0

    hub = Hub()  # never started: _dispatch is what the reader calls for each message
    listener = _Recorder()
    hub._listeners["c"] = {listener}  # type: ignore[dict-item]
    before = bad()
    with caplog.at_level("WARNING", logger="ws4redis.hub"):
        for _ in range(50):
            hub._dispatch("c", wire.head(text=True) + "²-0\nx".encode())
        hub._dispatch("c", wire.encode(b"ok", text=False))
        hub._dispatch("c", OLD_EVENT + FORGED_EVENT)  # raw: delivered as is, not an event
    assert bad() - before == 50
    assert len([r for r in caplog.records if "cannot parse" in r.getMessage()]) == 1
    assert [(d.data, d.text, d.id, d.event) for d in listener.deliveries] == [
        (b"ok", False, None, False), (OLD_EVENT + FORGED_EVENT, False, None, False)
    ]


def test_publish_pipeline_never_marks_bytes_that_are_not_utf8_as_text(redis_server: RedisServer) -> None:
    """A hook may turn a client's text into any bytes: they go out binary instead of being skipped by every hub."""
    from ws4redis.redis_store import publish_pipeline

    client = redis_server.client()
    pubsub = client.pubsub()
    pubsub.subscribe("test:broadcast:hooked")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    pipe = client.pipeline(transaction=False)
    publish_pipeline(pipe, ["test:broadcast:hooked"], b"\xff", 0, text=True)
    publish_pipeline(pipe, ["test:broadcast:hooked"], b"fine", 0, text=False)
    pipe.execute()
    records = [wire.decode(pubsub.get_message(timeout=5)["data"]) for _ in range(2)]
    assert records == [wire.Record(b"\xff", False, None, False), wire.Record(b"fine", False, None, False)]
    pubsub.close()
    client.close()
