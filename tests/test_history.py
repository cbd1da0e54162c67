"""History and recovery (``ws4redis.history``): pure rules, the publish path against Redis, and end to end on uWSGI."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import websocket
from django.test import override_settings

from tests.conftest import People, connect
from tests.servers import RedisServer, UwsgiServer
from tests.test_websocket import redis_clients_of, wait_until
from ws4redis import history, wire
from ws4redis.history import ZERO, recoverable
from ws4redis.publisher import RedisPublisher

HISTORY = {
    "numbers": {"size": 5000, "ttl": 600},
    "tiny": {"size": 10, "ttl": 600},
    "feed-*": {"size": 100, "ttl": 600},
}
OVERRIDES: dict[str, Any] = {"WS4REDIS_HISTORY": HISTORY}


# -- pure -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("since", "exists", "first", "max_deleted", "expected"),
    [
        ((10, 0), True, (5, 0), (0, 0), True),  # the id is still in the stream
        ((10, 0), True, (10, 1), (10, 0), True),  # trimmed exactly up to the id
        ((10, 0), True, (12, 0), (11, 0), False),  # something after the id was trimmed
        ((10, 0), True, (12, 0), (9, 0), True),  # trimmed before the id; the next message came in a later ms
        ((10, 0), True, (12, 0), (0, 0), False),  # nothing trimmed and yet it starts later: the stream was reset
        ((10, 0), True, (12, 0), None, False),  # Redis < 7 cannot tell: safe side
        ((10, 0), False, None, None, False),  # the stream expired or was deleted
        (ZERO, False, None, None, True),  # absent then, absent now: nothing was published
        (ZERO, True, (12, 0), (0, 0), True),  # created since, nothing trimmed: all of it is there
        (ZERO, True, (12, 0), (11, 0), False),
    ],
)
def test_recoverable(since: Any, exists: bool, first: Any, max_deleted: Any, expected: bool) -> None:
    assert recoverable(since, exists=exists, first=first, max_deleted=max_deleted) is expected


@override_settings(WS4REDIS_HISTORY=HISTORY, WS4REDIS_PREFIX="p")
def test_windows_by_name_and_pattern_and_stream_keys() -> None:
    assert history.window_for("p:broadcast:numbers") == history.Window(5000, 600)
    assert history.window_for("p:group:a:b:feed-1") == history.Window(100, 600)
    assert history.window_for("p:broadcast:other") is None
    assert history.history_key("p:group:red:tiny") == "p:history:{p:group:red:tiny}"


# -- the publish path, against a real Redis -------------------------------------------------------------------------
@override_settings(WS4REDIS_HISTORY=HISTORY, WS4REDIS_EXPIRE=60)
def test_publish_keeps_history_and_the_original_kept_message(redis_server: RedisServer) -> None:
    client = redis_server.client()
    pubsub = client.pubsub()
    pubsub.subscribe("test:broadcast:numbers")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    publisher = RedisPublisher(facility="numbers", broadcast=True)
    assert publisher.publish_message("one") == 1
    raw = pubsub.get_message(timeout=5)["data"]
    record = wire.decode(raw)
    assert isinstance(record, wire.Record) and (record.payload, record.text) == (b"one", True)
    ((stream_id, fields),) = client.xrange("test:history:{test:broadcast:numbers}")
    assert stream_id.decode() == record.id and fields == {b"d": b"one", b"k": b"t"}
    # The kept message and fetch_message are the original's: the payload, no prefix.
    assert client.get("test:broadcast:numbers") == b"one"
    assert publisher.fetch_message(None, "numbers", "broadcast") == b"one"
    assert 0 < client.ttl("test:history:{test:broadcast:numbers}") <= 600
    pubsub.close()
    client.close()


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_trimming_keeps_about_size_messages(redis_server: RedisServer) -> None:
    publisher = RedisPublisher(facility="tiny", broadcast=True)
    for i in range(500):
        publisher.publish_message(str(i))
    client = redis_server.client()
    length = client.xlen("test:history:{test:broadcast:tiny}")
    client.close()
    assert 10 <= length < 500  # MAXLEN ~: whole nodes are trimmed, never below size


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_messages_queued_before_the_position_is_read_are_sent_once(redis_server: RedisServer) -> None:
    """The hub may queue a socket's first live messages between Redis' confirmation of its subscription and the read
    of the stream's position; the stream's top already counts them. They must go out (once), not be taken for sent."""
    channel = "test:broadcast:numbers"
    publisher = RedisPublisher(facility="numbers", broadcast=True)
    publisher.publish_message("before the socket")
    client = redis_server.client()
    subscribed_top = history.parse_id(client.xrevrange(history.history_key(channel), count=1)[0][0])
    for i in range(3):
        publisher.publish_message(f"queued {i}")  # live: in the socket's queue, not sent yet
    queued = [history.parse_id(raw) for raw, _ in client.xrange(history.history_key(channel))][1:]
    recovery = history.Recovery([channel])
    recovery.start(client, live=lambda: {channel: queued[0]})
    assert subscribed_top is not None and subscribed_top <= recovery.last[channel] < queued[0]  # type: ignore[operator]
    assert [recovery.fresh(channel, history.format_id(q)) for q in queued] == [True, True, True]  # type: ignore[arg-type]
    assert [recovery.fresh(channel, history.format_id(q)) for q in queued] == [False, False, False]  # type: ignore[arg-type]
    client.close()


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_a_replay_after_a_reconnect_fills_the_hole_before_the_live_queue(redis_server: RedisServer) -> None:
    """After a hub reconnect the live queue holds messages from before the drop and after it, with a hole between:
    the replay sends all of them from the last one sent, in order, and the live copies it covered are dropped."""
    channel = "test:broadcast:numbers"
    publisher = RedisPublisher(facility="numbers", broadcast=True)
    client = redis_server.client()
    recovery = history.Recovery([channel])
    recovery.start(client)
    for i in range(6):
        publisher.publish_message(str(i))
    ids = [history.parse_id(raw) for raw, _ in client.xrange(history.history_key(channel))]
    assert recovery.fresh(channel, history.format_id(ids[0])) is True  # type: ignore[arg-type]
    queue = [ids[1], ids[4], ids[5]]  # 1 came before the drop, 2 and 3 while the link was down, 4 and 5 after it
    messages, lost = recovery.replay(client, dict(recovery.last))
    assert [data for _, _, data, _ in messages] == [b"1", b"2", b"3", b"4", b"5"] and lost == []
    assert [recovery.fresh(channel, history.format_id(q)) for q in queue] == [False, False, False]  # type: ignore[arg-type]
    client.close()


# -- end to end -----------------------------------------------------------------------------------------------------
class V2Client:
    """A small ``ws4redis.v2`` client: keeps the last id per stream and resumes from it, as the JS client does."""

    def __init__(self, server: UwsgiServer, path: str, **kwargs: Any) -> None:
        self.server, self.path, self.kwargs = server, path, kwargs
        self.last_ids: dict[str, str] = {}
        self.messages: list[dict[str, Any]] = []
        self.controls: list[dict[str, Any]] = []
        self.ws: websocket.WebSocket | None = None

    def connect(self) -> dict[str, Any]:
        """Connect, take the welcome's offsets for streams not seen yet, send ``resume``; returns the welcome."""
        self.ws = connect(self.server, self.path, subprotocols=["ws4redis.v2"], **self.kwargs)
        welcome = json.loads(self.ws.recv())
        assert welcome["type"] == "welcome"
        for stream, position in welcome.get("offsets", {}).items():
            self.last_ids.setdefault(stream, position)
        self.ws.send(json.dumps({"type": "resume", "since": self.last_ids}))
        return welcome

    def receive(self) -> dict[str, Any]:
        assert self.ws is not None
        frame = json.loads(self.ws.recv())
        if frame["type"] == "message":
            if frame["id"] is not None:
                self.last_ids[f"{frame['audience']}:{frame['channel']}"] = frame["id"]
            self.messages.append(frame)
        else:
            self.controls.append(frame)
        return frame

    def receive_until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            frame = self.receive()
            if predicate(frame):
                return frame

    def close(self) -> None:
        assert self.ws is not None
        self.ws.close()

    def data(self) -> list[str]:
        return [m["data"] for m in self.messages]


def publish_in_background(facility: str, count: int, *, after: threading.Event | None = None,
                          progress: list[int] | None = None) -> threading.Thread:
    """Publish ``0..count-1`` on the broadcast channel of ``facility`` from a thread (as a Django process would)."""

    def run() -> None:
        with override_settings(WS4REDIS_HISTORY=HISTORY):
            publisher = RedisPublisher(facility=facility, broadcast=True)
            for i in range(count):
                if after is not None and i == count // 2:
                    after.wait(10)
                publisher.publish_message(str(i))
                if progress is not None:
                    progress.append(i)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_client_disconnected_halfway_resumes_all_1000_in_order(uwsgi_factory: Callable[..., UwsgiServer]) -> None:
    server = uwsgi_factory(OVERRIDES)
    client = V2Client(server, "/ws/numbers?subscribe-broadcast")
    client.connect()
    assert client.receive()["type"] == "recovered"
    reconnect = threading.Event()
    progress: list[int] = []
    publisher = publish_in_background("numbers", 1000, after=reconnect, progress=progress)
    while len(client.messages) < 300:
        client.receive()
    client.close()  # gone while messages keep coming (the publisher does not wait for it)
    wait_until(lambda: len(progress) >= 450)
    client.connect()  # back while the publisher is still running: replay and live traffic overlap
    reconnect.set()
    answer = client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))
    assert answer["type"] == "recovered", answer
    assert answer["replayed"] > 0
    while len(client.messages) < 1000:
        client.receive()
    publisher.join(10)
    assert client.data() == [str(i) for i in range(1000)]  # all of them, in order, none twice
    assert [m for m in client.controls if m["type"] != "recovered"] == []


def test_a_second_resume_from_before_what_went_out_live_is_late(uwsgi_factory: Callable[..., UwsgiServer]) -> None:
    """Once live messages went out on a stream, a resume from before them cannot be put in order: ``late``, and
    nothing is sent twice."""
    server = uwsgi_factory(OVERRIDES)
    client = V2Client(server, "/ws/numbers?subscribe-broadcast")
    welcome = client.connect()
    client.receive_until(lambda f: f["type"] == "recovered")
    with override_settings(WS4REDIS_HISTORY=HISTORY):
        publisher = RedisPublisher(facility="numbers", broadcast=True)
        for i in range(3):
            publisher.publish_message(str(i))
        while len(client.messages) < 3:
            client.receive()
        assert client.ws is not None
        client.ws.send(json.dumps({"type": "resume", "since": welcome["offsets"]}))
        answer = client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))
        assert answer["type"] == "not_recovered" and answer["reasons"] == {"broadcast:numbers": "late"}
        assert answer["replayed"] == 0
        publisher.publish_message("after")
        client.receive_until(lambda f: f["type"] == "message")
    assert client.data() == ["0", "1", "2", "after"]


def test_window_exceeded_is_not_recovered(uwsgi_factory: Callable[..., UwsgiServer]) -> None:
    server = uwsgi_factory(OVERRIDES)
    client = V2Client(server, "/ws/tiny?subscribe-broadcast")
    client.connect()
    client.receive_until(lambda f: f["type"] == "recovered")
    with override_settings(WS4REDIS_HISTORY=HISTORY):
        publisher = RedisPublisher(facility="tiny", broadcast=True)
        publisher.publish_message("seen")
        assert client.receive()["data"] == "seen"
        client.close()
        for i in range(500):  # far more than the window of 10 (trimmed by whole nodes of 100)
            publisher.publish_message(str(i))
    client.connect()
    answer = client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))
    assert answer["type"] == "not_recovered"
    assert answer["reasons"] == {"broadcast:tiny": "window exceeded"}
    # What the window still holds was sent before the answer, the newest last.
    assert client.messages[-1]["data"] == "499"


def test_a_reset_stream_is_not_recovered(uwsgi_factory: Callable[..., UwsgiServer], redis_server: RedisServer) -> None:
    server = uwsgi_factory(OVERRIDES)
    client = V2Client(server, "/ws/feed-reset?subscribe-broadcast")
    client.connect()
    client.receive_until(lambda f: f["type"] == "recovered")
    with override_settings(WS4REDIS_HISTORY=HISTORY):
        publisher = RedisPublisher(facility="feed-reset", broadcast=True)
        publisher.publish_message("before")
        assert client.receive()["data"] == "before"
        client.close()
        redis = redis_server.client()
        redis.delete("test:history:{test:broadcast:feed-reset}")  # as a Redis restart without persistence would
        redis.close()
        publisher.publish_message("after")
    client.connect()
    answer = client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))
    assert answer["type"] == "not_recovered" and answer["reasons"] == {"broadcast:feed-reset": "window exceeded"}


def test_a_stream_never_received_on_is_resumed_from_the_welcome_offset(
    uwsgi_factory: Callable[..., UwsgiServer],
) -> None:
    server = uwsgi_factory(OVERRIDES)
    client = V2Client(server, "/ws/feed-quiet?subscribe-broadcast")
    welcome = client.connect()
    assert welcome["offsets"] == {"broadcast:feed-quiet": "0-0"}  # the stream does not exist yet
    client.receive_until(lambda f: f["type"] == "recovered")
    client.close()
    with override_settings(WS4REDIS_HISTORY=HISTORY):
        RedisPublisher(facility="feed-quiet", broadcast=True).publish_message("while away")
    client.connect()
    assert client.receive()["data"] == "while away"
    assert client.receive()["type"] == "recovered"


def test_facility_without_history_is_not_recovered(server: UwsgiServer) -> None:
    client = V2Client(server, "/ws/plain?subscribe-broadcast")
    welcome = client.connect()
    assert "offsets" not in welcome
    answer = client.receive()
    assert answer["type"] == "not_recovered" and answer["reasons"] == {"broadcast:plain": "no history"}


def test_hub_link_killed_mid_stream_loses_no_message(
    uwsgi_factory: Callable[..., UwsgiServer], redis_server: RedisServer, people: People,
) -> None:
    server = uwsgi_factory(OVERRIDES)
    v2 = V2Client(server, "/ws/numbers?subscribe-broadcast")
    v2.connect()
    v2.receive_until(lambda f: f["type"] == "recovered")
    legacy = connect(server, "/ws/numbers?subscribe-broadcast", cookie=people.cookie("alice"))
    (hub_link,) = [c for c in redis_clients_of(redis_server, server.workers()) if int(str(c["sub"])) > 0]
    kill = threading.Event()
    publisher = publish_in_background("numbers", 2000, after=kill)
    while len(v2.messages) < 200:
        v2.receive()
    redis = redis_server.client()
    assert redis.client_kill_filter(_id=str(hub_link["id"])) == 1  # mid-stream: half is published after this
    kill.set()
    while len(v2.messages) < 2000:
        v2.receive()
    legacy_data = [legacy.recv() for _ in range(2000)]
    publisher.join(10)
    expected = [str(i) for i in range(2000)]
    assert v2.data() == expected
    assert legacy_data == expected  # the legacy client, too: the server replays, the client sees plain payloads
    assert [c for c in v2.controls if c["type"] == "reconnected"] == []  # everything was recovered
    wait_until(lambda: redis.pubsub_numsub("test:broadcast:numbers")[0][1] == 1)
    redis.close()


def test_legacy_clients_get_plain_payloads_and_the_kept_message(uwsgi_factory: Callable[..., UwsgiServer]) -> None:
    overrides = {**OVERRIDES, "WS4REDIS_EXPIRE": 60}
    server = uwsgi_factory(overrides)
    with override_settings(WS4REDIS_HISTORY=HISTORY, WS4REDIS_EXPIRE=60):
        RedisPublisher(facility="feed-kept", broadcast=True).publish_message("kept")
        legacy = connect(server, "/ws/feed-kept?subscribe-broadcast")
        assert legacy.recv() == "kept"
        RedisPublisher(facility="feed-kept", broadcast=True).publish_message(b"\x00\xffbinary")
        assert legacy.recv() == b"\x00\xffbinary"
        RedisPublisher(facility="feed-kept", broadcast=True).publish_message("live")
        assert legacy.recv() == "live"
