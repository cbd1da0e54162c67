"""The sans-I/O session core without servers: events in, actions out (``ws4redis.core``).

Every test drives a ``Session`` as a driver would and asserts the actions it decides; hostile input (oversized,
malformed, floods) included. History uses ``ws4redis.history.Recovery`` with a fake Redis answering only the three
stream reads it makes (pure unit tests; the end-to-end suites run the same core against real Redis).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from ws4redis import history
from ws4redis.core import DROPPED, FIRST, QUEUED, WAKE, CloseCode, Config, Delivery, Session, State, actions
from ws4redis.core.protocol import V2_NAME, protocol_for

CHANNEL = "broadcast:chat"
HISTORY = {"chat": {"size": 100, "ttl": 60}}


def session(
    *, v2: bool = True, config: Config | None = None, listen: list[str] | None = None,
    publish: list[str] | None = None, recovery: Any = None, **options: Any,
) -> Session:
    listen = [CHANNEL] if listen is None else listen
    return Session(
        config or Config(), protocol_for(V2_NAME if v2 else None, heartbeat="--hb--", prefix=None),
        listen=listen, publish=[] if publish is None else publish,
        recovery=history.recovery_for(listen) if recovery is None else recovery, label="test", **options,
    )


def opened(**kwargs: Any) -> Session:
    s = session(**kwargs)
    s.opened("chat", subscribe=["broadcast"])
    s.take()
    return s


def frames(todo: list[actions.Action]) -> list[dict[str, Any]]:
    return [json.loads(a.data) for a in todo if isinstance(a, actions.Send)]


def closes(todo: list[actions.Action]) -> list[int]:
    return [a.code for a in todo if isinstance(a, actions.Close)]


def always() -> bool:
    return True


def delivery(data: bytes = b"hello", *, channel: str = CHANNEL, id: str | None = None, event: bool = False) -> Delivery:
    d = Delivery(channel, data, True, id, event)
    d.pending = 1
    return d


# -- opening, welcome ------------------------------------------------------------------------------------------------
def test_a_v2_client_is_welcomed_with_what_the_policy_granted() -> None:
    s = session()
    s.opened("chat", subscribe=["user", "broadcast"], publish=[])
    assert s.state is State.OPEN
    assert frames(s.take()) == [{"type": "welcome", "facility": "chat", "subscribe": ["broadcast", "user"],
                                 "publish": []}]


def test_a_legacy_client_gets_no_welcome() -> None:
    s = session(v2=False)
    s.opened("chat")
    assert s.take() == []


# -- deliveries and the queue ------------------------------------------------------------------------------------------
def test_deliveries_queue_in_order_and_drain_counts_each_done() -> None:
    s = opened()
    first, second = delivery(b"1"), delivery(b"2")
    assert s.deliver(first) == FIRST
    assert s.deliver(second) == QUEUED
    assert s.writable_nowait()
    assert s.drain() == [first, second]
    assert (first.pending, second.pending) == (0, 0)
    assert s.queue == [] and s.queued_bytes == 0
    assert s.frame(first) == (b'{"type":"message","channel":"chat","audience":"broadcast","id":null,"data":"1"}', True)


def test_the_frame_cache_encodes_a_delivery_once_per_protocol() -> None:
    shared = delivery()
    calls: list[bytes] = []

    def encode(payload: bytes, *, text: bool) -> bytes:
        calls.append(payload)
        return b"F" + payload

    a, b = opened(), opened()
    assert a.wire(shared, encode) == b.wire(shared, encode)
    assert len(calls) == 1


def test_a_legacy_client_never_gets_presence_events() -> None:
    s = opened(v2=False)
    event = delivery(b'{"type":"join","user":"a"}', event=True)
    assert s.deliver(event) == DROPPED
    assert event.pending == 0 and s.queue == []


def test_slow_consumer_is_closed_with_4008_and_its_queue_discarded() -> None:
    s = opened(config=Config(queue_bytes=1000))
    queued = [delivery(b"x" * 300) for _ in range(2)]
    for d in queued:
        assert s.deliver(d) in (FIRST, QUEUED)
    late = delivery(b"x" * 300)
    assert s.deliver(late) == WAKE
    assert s.state is State.CLOSING
    assert closes(s.take()) == [CloseCode.SLOW_CONSUMER]
    assert s.queue == [] and all(d.pending == 0 for d in [*queued, late])
    assert s.deliver(delivery()) == DROPPED  # closing: nothing more is queued


def test_drop_oldest_keeps_the_queue_bounded_and_sums_the_drops_into_one_gap_notice() -> None:
    s = opened(config=Config(queue_bytes=1000, drop_oldest=True))
    flood = [delivery(b"%05d" % i + b"x" * 95) for i in range(10_000)]
    for d in flood:
        assert s.deliver(d) != WAKE
    assert s.queued_bytes <= 1000
    assert s.state is State.OPEN
    assert not s.writable_nowait()  # the gap notice must go before the queue
    todo = s.take()
    assert frames(todo) == [{"type": "gap", "dropped": 10_000 - len(s.queue)}]
    assert s.drain()[-1] is flood[-1]
    assert all(d.pending == 0 for d in flood)


def test_drop_oldest_tells_a_legacy_client_nothing_but_still_drops() -> None:
    s = opened(v2=False, config=Config(queue_bytes=300, drop_oldest=True))
    for _ in range(10):
        s.deliver(delivery(b"x" * 100))
    assert s.take() == []
    assert len(s.drain()) == 1


# -- the client's messages: hostile input --------------------------------------------------------------------------
def test_an_oversized_message_closes_1009_and_nothing_after_it_is_handled() -> None:
    s = opened(config=Config(max_message_size=100), publish=[CHANNEL])
    s.receive(b"x" * 101, text=True, allow=always)
    s.receive(b'{"type":"ping"}', text=True, allow=always)
    assert s.take() == [actions.Close(CloseCode.MESSAGE_TOO_BIG, "message too big")]


@pytest.mark.parametrize("data", [b"{", b"[1]", b'{"type":5}', b'{"type":"nope"}', b"\xff\xfe", b"[" * 60_000])
def test_malformed_v2_input_is_answered_with_an_error_and_the_socket_stays_open(data: bytes) -> None:
    s = opened()
    s.receive(data, text=True, allow=always)
    todo = s.take()
    assert closes(todo) == []
    assert [f["type"] for f in frames(todo)] == ["error"]
    assert s.state is State.OPEN


def test_a_request_flood_is_closed_1008_once_the_control_allowance_is_spent() -> None:
    s = opened()
    tokens = iter([True] * 5 + [False] * 100)
    for _ in range(50):
        s.receive(b'{"type":"ping","t":1}', text=True, allow=lambda: next(tokens))
    todo = s.take()
    assert [f["type"] for f in frames(todo)] == ["pong"] * 5 + ["error"]
    assert closes(todo) == [CloseCode.POLICY_VIOLATION]


def test_a_publish_flood_is_closed_4029_after_the_burst() -> None:
    s = opened(config=Config(publish_rate=1.0, publish_burst=3), publish=[CHANNEL])
    for i in range(20):
        s.receive(json.dumps({"type": "publish", "data": str(i)}).encode(), text=True, allow=always)
    todo = s.take()
    assert [a.data for a in todo if isinstance(a, actions.Publish)] == [b"0", b"1", b"2"]
    assert frames(todo)[-1] == {"type": "error", "reason": "rate limited"}
    assert closes(todo) == [CloseCode.RATE_LIMITED]


def test_a_client_not_allowed_to_publish_is_told_and_nothing_is_published() -> None:
    s = opened()
    s.receive(b'{"type":"publish","data":"x"}', text=True, allow=always)
    todo = s.take()
    assert frames(todo) == [{"type": "error", "reason": "not allowed to publish"}]
    assert not any(isinstance(a, actions.Publish) for a in todo)


def test_the_legacy_heartbeat_is_echoed_and_never_published() -> None:
    s = opened(v2=False, publish=[CHANNEL])
    s.receive(b"--hb--", text=True, allow=always)
    s.receive(b"payload", text=True, allow=always)
    assert s.take() == [actions.Send(b"--hb--", True), actions.Publish((CHANNEL,), b"payload", True)]


def test_own_echo_is_suppressed_without_echo_and_others_get_the_same_bytes() -> None:
    s = opened(v2=False, publish=[CHANNEL])
    s.receive(b"mine", text=True, allow=always)
    s.take()
    echo = delivery(b"mine")
    assert s.deliver(echo) == DROPPED and echo.pending == 0
    assert s.deliver(delivery(b"mine")) == FIRST  # a second copy is somebody else's


def test_with_echo_the_own_message_comes_back() -> None:
    s = opened(v2=False, publish=[CHANNEL], echo=True)
    s.receive(b"mine", text=True, allow=always)
    assert s.deliver(delivery(b"mine")) == FIRST


def test_own_echoes_remembered_are_bounded() -> None:
    s = opened(v2=False, publish=[CHANNEL], config=Config(publish_rate=None))
    for i in range(10_000):
        s.receive(b"%d" % i, text=True, allow=always)
    s.take()
    assert s._own is not None and len(s._own) == 64


def test_the_message_hook_runs_before_publishing_and_a_failure_closes_1011() -> None:
    s = opened(publish=[CHANNEL], message_hook=True)
    s.receive(b'{"type":"publish","data":"x"}', text=True, allow=always)
    assert s.take() == [actions.RunMessageHook(b"x", True)]
    s.hooked(b"X!", True)
    assert s.take() == [actions.Publish((CHANNEL,), b"X!", True)]
    s.hooked(None, True)
    assert s.take() == []
    s.hook_failed()
    todo = s.take()
    assert frames(todo) == [{"type": "error", "reason": "internal error"}]
    assert closes(todo) == [CloseCode.INTERNAL_ERROR]


# -- server-side notices -----------------------------------------------------------------------------------------------
def test_revocation_tells_a_v2_client_then_closes_4003_once() -> None:
    s = opened()
    s.deliver(delivery())
    assert s.revoke() is True
    assert s.revoke() is False
    todo = s.take()
    assert frames(todo) == [{"type": "revoked"}]
    assert closes(todo) == [CloseCode.REVOKED]
    assert s.queue == []


def test_revocation_of_a_legacy_client_is_the_close_code_alone() -> None:
    s = opened(v2=False)
    s.revoke()
    assert s.take() == [actions.Close(CloseCode.REVOKED, "revoked")]


def test_drain_tells_when_to_come_back_then_closes_1001() -> None:
    s = opened()
    assert s.shutdown(1500)
    assert s.take() == [
        actions.Send(b'{"type":"shutdown","reconnect_in":1500}', True),
        actions.Close(CloseCode.GOING_AWAY, "reconnect_in=1500"),
    ]
    assert not s.revoke()


def test_a_hub_reconnect_without_history_is_told_to_a_v2_client_only() -> None:
    v2, legacy = opened(), opened(v2=False)
    assert v2.hub_reconnected() and frames(v2.take()) == [{"type": "reconnected"}]
    assert not legacy.hub_reconnected() and legacy.take() == []


def test_an_expired_user_session_is_revoked_on_the_periodic_tick_only() -> None:
    s = opened(expires_at=1000.0)
    s.tick(5.0)
    assert s.take() == []
    s.tick(5.0, wall=999.0)
    assert s.take() == []
    s.tick(5.0, wall=1000.0)
    assert closes(s.take()) == [CloseCode.REVOKED]


def test_a_revocation_while_opening_waits_for_the_upgrade() -> None:
    s = session()
    s.deliver(delivery())
    s.revoke()
    assert s.state is State.CLOSING
    assert closes(s.take()) == [CloseCode.REVOKED]


# -- run-time subscriptions --------------------------------------------------------------------------------------------
def test_subscribe_is_the_drivers_to_authorise_and_the_sessions_to_answer() -> None:
    from ws4redis.core.protocol import Change

    s = opened()
    s.receive(b'{"type":"subscribe","facility":"news","audiences":["broadcast"]}', text=True, allow=always)
    (request,) = s.take()
    assert request == actions.Subscribe(Change("subscribe", "news", ("broadcast",)))
    s.subscribed(request.change, ["broadcast"], ["broadcast:news"])
    todo = s.take()
    assert frames(todo) == [{"type": "subscribed", "facility": "news", "audiences": ["broadcast"]}]
    assert todo[-1] == actions.SendKept(("broadcast:news",))
    assert s.listen == [CHANNEL, "broadcast:news"]
    s.refused(request.change, "not allowed")
    assert frames(s.take()) == [{"type": "error", "reason": "not allowed", "request": "subscribe", "facility": "news"}]


def test_unsubscribe_drops_what_is_queued_for_the_channels_that_go() -> None:
    from ws4redis.core.protocol import Change

    s = opened(listen=[CHANNEL, "broadcast:news"])
    news, chat = delivery(b"n", channel="broadcast:news"), delivery(b"c")
    s.deliver(news)
    s.deliver(chat)
    s.unsubscribed(Change("unsubscribe", "news", ()), {"broadcast:news"})
    assert s.listen == [CHANNEL]
    assert news.pending == 0 and s.queue == [chat]
    assert frames(s.take()) == [{"type": "unsubscribed", "facility": "news", "audiences": []}]


# -- history: resume hold, late, exactly once --------------------------------------------------------------------------
class FakeRedis:
    """The three stream reads ``history.Recovery`` makes, over in-memory streams (pure unit tests only)."""

    def __init__(self) -> None:
        self.streams: dict[str, list[tuple[bytes, dict[bytes, bytes]]]] = {}

    def add(self, channel: str, message_id: str, data: bytes) -> None:
        self.streams.setdefault(history.history_key(channel), []).append((message_id.encode(), {b"d": data}))

    def pipeline(self, transaction: bool = False) -> FakeRedis._Pipe:
        return FakeRedis._Pipe(self)

    class _Pipe:
        def __init__(self, redis: FakeRedis) -> None:
            self.redis = redis
            self.calls: list[Callable[[], Any]] = []

        def xrevrange(self, key: str, count: int) -> None:
            self.calls.append(lambda: list(reversed(self.redis.streams.get(key, [])))[:count])

        def xinfo_stream(self, key: str) -> None:
            def info() -> Any:
                entries = self.redis.streams.get(key)
                if not entries:
                    return Exception("no such key")
                return {"first-entry": entries[0], "max-deleted-entry-id": b"0-0"}
            self.calls.append(info)

        def xrange(self, key: str, min: str) -> None:
            since = history.parse_id(min.lstrip("(")) if min != "-" else None
            self.calls.append(lambda: [
                e for e in self.redis.streams.get(key, [])
                if since is None or (history.parse_id(e[0]) or history.ZERO) > since
            ])

        def execute(self, raise_on_error: bool = True) -> list[Any]:
            return [call() for call in self.calls]


def drive(s: Session, redis: FakeRedis, now: float = 0.0) -> list[actions.Action]:
    """Carry out the session's history actions as a driver does; returns the rest, in order."""
    rest: list[actions.Action] = []
    todo = s.take()
    while todo:
        action = todo.pop(0)
        if isinstance(action, actions.ReadPositions):
            s.recovery.start(redis, action.channels, s.first_live)  # type: ignore[attr-defined]
            if action.channels is None:
                s.positions_read(now, ok=True)
        elif isinstance(action, actions.Replay):
            messages, lost = s.recovery.replay(  # type: ignore[attr-defined]
                redis, action.since, s.first_live if action.live else None
            )
            s.replayed(action, messages, lost)
        else:
            rest.append(action)
            continue
        todo = s.take() + todo
    return rest


def history_session(redis: FakeRedis, *, now: float = 0.0, config: Config | None = None) -> Session:
    s = session(config=config or Config(resume_wait=2.0))
    read = s.attached()
    assert read == actions.ReadPositions(None)
    s.recovery.start(redis, None, s.first_live)  # type: ignore[attr-defined]
    s.positions_read(now, ok=True)
    s.opened("chat", subscribe=["broadcast"])
    return s


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_a_resume_replays_what_was_missed_before_live_messages_exactly_once() -> None:
    redis = FakeRedis()
    for i in range(1, 4):
        redis.add(CHANNEL, f"100-{i}", b"old%d" % i)
    s = history_session(redis)
    todo = s.take()
    assert actions.Wake(2.0) in todo
    assert frames(todo)[0]["offsets"] == {"broadcast:chat": "100-3"}
    # Published after the positions were read: in the stream and live.
    redis.add(CHANNEL, "100-4", b"new4")
    s.deliver(delivery(b"new4", id="100-4"))
    assert s.held and s.drain() == [] and not s.writable_nowait()
    s.receive(json.dumps({"type": "resume", "since": {"broadcast:chat": "100-1"}}).encode(), text=True, allow=always)
    sent = drive(s, redis)
    assert [f.get("data", f["type"]) for f in frames(sent)] == ["old2", "old3", "recovered"]
    assert not s.held
    live = s.drain()
    assert [d.data for d in live] == [b"new4"]
    # The same message again (a duplicate from the hub) is never sent twice.
    s.deliver(delivery(b"new4", id="100-4"))
    assert s.drain() == []


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_a_resume_after_the_hold_ran_out_is_late() -> None:
    redis = FakeRedis()
    redis.add(CHANNEL, "100-1", b"old")
    s = history_session(redis, now=10.0)
    s.take()
    s.tick(11.0)
    assert s.held
    s.tick(12.0)
    assert not s.held
    s.receive(json.dumps({"type": "resume", "since": {"broadcast:chat": "100-1"}}).encode(), text=True, allow=always)
    (answer,) = frames(drive(s, redis))
    assert answer["type"] == "not_recovered" and answer["reasons"] == {"broadcast:chat": "late"}


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_a_resume_with_a_bad_id_or_a_stream_without_history_is_not_recovered() -> None:
    redis = FakeRedis()
    s = history_session(redis)
    s.take()
    s.receive(b'{"type":"resume","since":{"broadcast:chat":"nope"}}', text=True, allow=always)
    (answer,) = frames(drive(s, redis))
    assert answer["reasons"] == {"broadcast:chat": "bad id"}


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_a_hub_reconnect_replays_to_the_end_and_drops_the_live_copies() -> None:
    redis = FakeRedis()
    redis.add(CHANNEL, "100-1", b"a")
    s = history_session(redis, config=Config(resume_wait=0))
    s.take()
    s.deliver(delivery(b"b", id="100-2"))
    redis.add(CHANNEL, "100-2", b"b")
    assert [d.data for d in s.drain()] == [b"b"]
    # The link drops: 100-3 is never delivered live; 100-4 is, after the reconnect.
    redis.add(CHANNEL, "100-3", b"c")
    redis.add(CHANNEL, "100-4", b"d")
    assert s.hub_reconnected()
    s.deliver(delivery(b"d", id="100-4"))
    s.tick(1.0)
    sent = drive(s, redis)
    assert [f["data"] for f in frames(sent)] == ["c", "d"]  # silent otherwise: everything was recovered
    assert s.drain() == []  # the live copy of 100-4 went out with the replay


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_a_failed_reconnect_replay_is_tried_again_at_the_next_tick() -> None:
    s = history_session(FakeRedis(), config=Config(resume_wait=0))
    s.take()
    s.hub_reconnected()
    s.tick(1.0)
    (replay,) = s.take()
    assert isinstance(replay, actions.Replay) and replay.reason == "reconnect"
    s.replay_failed(replay)
    assert s.take() == []
    s.tick(2.0)
    assert [type(a) for a in s.take()] == [actions.Replay]


def test_the_fast_path_writes_the_whole_queue_only_when_nothing_must_go_first() -> None:
    def encode(payload: bytes, *, text: bool) -> bytes:
        return b"F" + payload

    s = opened(v2=False)
    first, second = delivery(b"1"), delivery(b"2")
    s.deliver(first)
    s.deliver(second)
    assert s.frames_nowait(encode) == b"F1F2"
    assert s.queue == [first, second]  # left until the driver says it is written
    assert s.flush_queue() == 2 and s.queue == [] and first.pending == 0
    s.deliver(delivery(b"3"))
    s.hub_reconnected()  # legacy: nothing to tell, nothing pending
    assert s.frames_nowait(encode) == b"F3"
    s.revoke()
    assert s.frames_nowait(encode) is None  # closing: the close goes out, the queue never


@override_settings(WS4REDIS_HISTORY=HISTORY)
def test_the_fast_path_is_not_taken_by_a_socket_with_history_or_held_for_its_resume() -> None:
    s = history_session(FakeRedis())
    s.deliver(delivery(b"1", id="1-1"))
    assert s.held and s.frames_nowait(lambda p, text: p) is None
