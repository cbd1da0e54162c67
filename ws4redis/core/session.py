"""``Session``: the policy of one websocket, without I/O (sans-I/O, as wsproto's connection or websockets' Protocol).

A driver (``ws4redis.runtime.gevent.connection`` on gevent, the asyncio driver, the websocket views) owns the socket,
the timers,
Redis and Django; it feeds the session what happened and carries out what the session decides:

- events in: ``opened``, ``receive`` (a client message), ``deliver`` (a message from the hub), ``tick``,
  ``hub_reconnected``, ``revoke``, ``shutdown``, ``close``, ``closed``, and the outcome of an action (``hooked``,
  ``subscribed``, ``unsubscribed``, ``refused``, ``kept``, ``positions_read``, ``replayed``, ``replay_failed``);
- out: ``take()``, the actions (``ws4redis.core.actions``) in the order they must run, and ``drain()``, the queued
  deliveries to write now (the hot path: no action object per message).

Everything a client can send is handled in every state and bounded (size, rates, a round's budget is the driver's);
illegal moves between states are the driver's bugs and raise ``IllegalTransition``. No gevent, asyncio, redis,
Django or uWSGI import here: ``tests/test_core_*.py`` run it without servers.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ws4redis import metrics
from ws4redis.core import actions as act
from ws4redis.core.codes import CloseCode
from ws4redis.core.config import QUEUE_ENTRY_BYTES, Config
from ws4redis.core.delivery import Delivery, is_text
from ws4redis.core.limits import TokenBucket
from ws4redis.core.protocol import Change, WireProtocol, origin_of
from ws4redis.core.state import State, check
from ws4redis.core.wire import parse_stream_id

__all__ = ["DROPPED", "FIRST", "QUEUED", "WAKE", "Positions", "Session"]

logger = logging.getLogger(__name__)

StreamId = tuple[int, int]
Replayed = list[tuple[str, str, bytes, bool]]  # (channel, id, payload, text), in publish order

_OWN_ECHOES = 64  # own publishes remembered for echo suppression; more in flight than this is not plausible

_OPEN, _OPENING = State.OPEN, State.OPENING

#: What ``Session.deliver`` tells its driver (ints, not an enum: it runs per socket per message).
DROPPED = 0  # nothing to do: suppressed, dropped or the session is closing
QUEUED = 1  # queued behind others: a write is already due
FIRST = 2  # the queue was empty: schedule a write (or wake the socket's task if it is busy)
WAKE = 3  # a close was decided (slow consumer): wake the socket's task to carry out ``take()``


class Positions(Protocol):
    """A socket's positions in its history streams (``ws4redis.broker.history.Recovery``, or the shared ``NoRecovery``).

    The session uses only the parts that do no I/O; the driver calls ``start`` and ``replay`` (Redis) when the
    session asks for them (``ReadPositions``, ``Replay``).
    """

    @property
    def enabled(self) -> bool: ...

    pending: bool

    @property
    def last(self) -> Mapping[str, StreamId]: ...

    @property
    def sent(self) -> Iterable[str]: ...

    def track(self, channel: str) -> bool: ...

    def fresh(self, channel: str, message_id: str | None) -> bool: ...

    def forget(self, channels: Iterable[str]) -> None: ...

    def offsets(self) -> dict[str, str]: ...


class Session:
    """One websocket's state and decisions. Slotted and small: an idle socket is mostly this and its driver; the
    ``Config`` and the ``WireProtocol`` are shared values, never copies.

    ``listen`` (the channels delivered to this socket) and ``publish`` (where its messages go) are the handshake's
    and change with v2 ``subscribe``/``unsubscribe``. ``recovery`` is the socket's history positions; a driver may
    replace it (``history.own_recovery``) when the session asks it to read positions of a run-time channel.
    """

    __slots__ = (
        "_actions", "_bucket", "_gaps", "_hold_until", "_late", "_own", "config", "echo", "expires_at",
        "hooked_publish", "label", "listen", "protocol", "publish", "queue", "queued_bytes", "recovery", "state",
    )

    def __init__(
        self, config: Config, protocol: WireProtocol, *, listen: list[str], publish: list[str], recovery: Positions,
        echo: bool = False, label: str = "", expires_at: float | None = None, message_hook: bool = False,
    ) -> None:
        self.config = config
        self.protocol = protocol
        self.state = State.OPENING
        self.listen = listen
        self.publish = publish
        self.echo = echo
        self.label = label
        self.expires_at = expires_at  # wall-clock time the user's session expires at, or None
        self.recovery = recovery
        self.hooked_publish = message_hook  # publishes go through the driver's message hook first
        self.queue: list[Delivery] = []  # a list: an empty deque is 760 B, and the queue is drained whole
        self.queued_bytes = 0
        self._actions: list[act.Action] | None = None  # made on demand: an idle socket has none
        self._gaps = 0  # messages dropped (drop-oldest) that the client has not been told of yet
        self._bucket: TokenBucket | None = None  # made by the first publish: most sockets never publish
        # Echo suppression by origin: (channel, payload) of this socket's own publishes not yet seen coming back.
        suppress = not echo and bool(set(listen) & set(publish))
        self._own: collections.deque[tuple[str, bytes]] | None = (
            collections.deque(maxlen=_OWN_ECHOES) if suppress else None
        )
        self._hold_until: float | None = None  # v2 with history: live messages wait for the client's resume until
        self._late = False  # the wait ran out: a resume now could not be put in order with what went out live

    # -- output ---------------------------------------------------------------------------------------------------
    def take(self) -> list[act.Action]:
        """The actions decided since the last call, in order (a pending ``gap`` notice first); empties the list."""
        actions, self._actions = self._actions, None
        if self._gaps:
            dropped, self._gaps = self._gaps, 0
            gap = self.protocol.control("gap", dropped=dropped)
            if gap is not None:
                actions = [act.Send(*gap), *(actions or ())]
        return actions or []

    @property
    def busy(self) -> bool:
        """Whether ``take()`` has something (a driver then must not write the queue before carrying it out)."""
        return self._actions is not None or bool(self._gaps)

    def writable_nowait(self) -> bool:
        """Whether the whole queue may go out as it is, outside the socket's own task (the gevent fan-out fast path):
        not while actions wait, the client is held for its resume, or the socket has history (each message needs
        ``Recovery.fresh`` in order, in ``drain``)."""
        return (
            self._actions is None and not self._gaps and self.state is _OPEN and self._hold_until is None
            and not self.recovery.enabled
        )

    def frames_nowait(self, encode: Callable[..., bytes]) -> bytes | None:
        """The whole queue as encoded frames (``encode(payload, text=...)``, cached per delivery as ``wire`` does)
        when it may go out as it is (``writable_nowait``), else ``None``. Leaves the queue as it is: once the frames
        are written, ``flush_queue``. One call per socket per fan-out, so the checks and the loop are inline."""
        if (
            self._actions is not None or self._gaps or self.state is not _OPEN or self._hold_until is not None
            or self.recovery.enabled
        ):
            return None
        key = self.protocol.wire_key
        frames = []
        for delivery in self.queue:
            wire: bytes | None = delivery.cache.get(key)
            if wire is None:
                payload, text = self.protocol.frame(delivery)
                wire = delivery.cache[key] = encode(payload, text=text)
            frames.append(wire)
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def flush_queue(self) -> int:
        """The driver wrote the whole queue (``frames_nowait``): each delivery counted done; returns how many."""
        queue, self.queue, self.queued_bytes = self.queue, [], 0
        done = metrics.done
        for delivery in queue:
            done(delivery)
        return len(queue)

    def drain(self) -> list[Delivery]:
        """The queued deliveries to write now, in order, each counted done; ``[]`` while the client is held for its
        resume (so a replay precedes live messages). Skips what a replay already sent and this socket's own echoes
        on history channels."""
        if self._hold_until is not None or not self.queue:
            return []
        queue, self.queue, self.queued_bytes = self.queue, [], 0
        recovery = self.recovery
        own = self._own
        if not recovery.enabled and not own:
            for delivery in queue:
                metrics.done(delivery)
            return queue
        fresh = recovery.fresh
        out: list[Delivery] = []
        for delivery in queue:
            metrics.done(delivery)
            if delivery.id is not None and not fresh(delivery.channel, delivery.id):
                continue  # already sent by a replay from history
            if delivery.id is not None and own and (delivery.channel, delivery.data) in own:
                own.remove((delivery.channel, delivery.data))
                continue  # this socket's own publish on a history channel (see deliver)
            out.append(delivery)
        return out

    def frame(self, delivery: Delivery) -> tuple[bytes, bool]:
        """The message payload of ``delivery`` for this socket's wire protocol, and whether it is text (cached)."""
        return self.protocol.frame(delivery)

    def wire(self, delivery: Delivery, encode: Callable[..., bytes]) -> bytes:
        """The encoded frame of ``delivery`` (``encode(payload, text=...)``), made by the first socket that needs it
        and kept in ``delivery.cache`` under the protocol's ``wire_key``."""
        key = self.protocol.wire_key
        wire: bytes | None = delivery.cache.get(key)
        if wire is None:
            payload, text = self.protocol.frame(delivery)
            wire = delivery.cache[key] = encode(payload, text=text)
        return wire

    def first_live(self) -> dict[str, StreamId]:
        """Channel -> the id of its first message in the live queue: where a replay of that channel stops (pass it
        to ``Recovery.start`` and, for a resume, ``Recovery.replay``)."""
        first: dict[str, StreamId] = {}
        for delivery in self.queue:
            if delivery.id is not None and delivery.channel not in first:
                parsed = parse_stream_id(delivery.id)
                if parsed is not None:
                    first[delivery.channel] = parsed
        return first

    @property
    def held(self) -> bool:
        """Whether live messages wait for the client's resume (``WS4REDIS_RESUME_WAIT``)."""
        return self._hold_until is not None

    # -- events: the socket's life --------------------------------------------------------------------------------
    def attached(self) -> act.ReadPositions | None:
        """The hub confirmed the subscriptions (before the upgrade): the history positions must be read now, so that
        nothing published after this point is missed by a replay. Returns ``ReadPositions(None)`` when a channel keeps
        history, for the driver to carry out at once (not through ``take``: a close decided meanwhile, a revocation,
        must wait for the upgrade), then ``positions_read``."""
        return act.ReadPositions(None) if self.recovery.enabled else None

    def positions_read(self, now: float, *, ok: bool) -> None:
        """Outcome of ``ReadPositions(None)``: a v2 socket now holds live messages until the client resumes or
        ``WS4REDIS_RESUME_WAIT`` runs out (emits ``Wake``). ``ok=False`` (Redis failed): no hold; a reconnect later
        reports the streams lost."""
        wait = self.config.resume_wait
        if ok and self.protocol.name is not None and wait > 0 and self.state is State.OPENING:
            self._hold_until = now + wait
            self._emit(act.Wake(wait))

    def opened(
        self, facility: str, *, subscribe: Iterable[str] = (), publish: Iterable[str] = (), welcome: bool = True,
    ) -> None:
        """The upgrade is done: a v2 client gets its ``welcome``: its ``facility``, the audiences the policy granted
        it (``subscribe``, ``publish``: it may have asked for more) and where its history streams stand. The driver
        then sends the kept messages (``kept``) and serves. ``welcome=False``: a websocket view speaks for itself."""
        self.state = check(self.state, State.OPEN)
        if not welcome:
            return
        welcome_frame = self.protocol.control(
            "welcome", facility=facility, subscribe=sorted(subscribe), publish=sorted(publish),
            **self._history_welcome(),
        )
        if welcome_frame is not None:
            self._emit(act.Send(*welcome_frame))

    def close(self, code: int, reason: str) -> bool:
        """Close from the server's side (any task may call): discards the queue, emits ``Close``. Returns whether
        this call decided it (the driver wakes the socket's task), ``False`` if closing already."""
        if self.state is State.CLOSING or self.state is State.CLOSED:
            return False
        self.state = check(self.state, State.CLOSING)
        self._discard_queue()
        self._emit(act.Close(code, reason))
        return True

    def closed(self) -> None:
        """The driver tore the socket down (whatever ended it): what is still queued is counted done."""
        self.state = check(self.state, State.CLOSED)
        self._discard_queue()
        self._actions = None

    def revoke(self) -> bool:
        """Logged out, session deleted or user deactivated: a v2 client is told, then closed with 4003. Once only
        (a logout both signals and deletes the session). Returns whether the driver must wake the socket."""
        if self.state is State.CLOSING or self.state is State.CLOSED:
            return False
        frame = self.protocol.control("revoked")
        if frame is not None:
            self._emit(act.Send(*frame))
        return self.close(CloseCode.REVOKED, "revoked")

    def shutdown(self, reconnect_in_ms: int) -> bool:
        """Drained (a reload or shutdown): a v2 client is told when to come back, then closed with 1001."""
        if self.state is State.CLOSING or self.state is State.CLOSED:
            return False
        frame = self.protocol.control("shutdown", reconnect_in=reconnect_in_ms)
        if frame is not None:
            self._emit(act.Send(*frame))
        return self.close(CloseCode.GOING_AWAY, f"reconnect_in={reconnect_in_ms}")

    def hub_reconnected(self) -> bool:
        """The hub's link to Redis dropped and is back. Channels with history are replayed at the next ``tick``
        (``Replay(reason="reconnect")``); otherwise a v2 client is told messages may be lost. Returns whether the
        driver must wake the socket."""
        if self.state is State.CLOSING or self.state is State.CLOSED:
            return False
        recovery = self.recovery
        if recovery.enabled:
            recovery.pending = True
            return True
        metrics.RECOVERIES.labels("not_recovered").inc()
        frame = self.protocol.control("reconnected")
        if frame is None:
            return False
        self._emit(act.Send(*frame))
        return True

    def tick(self, now: float, wall: float | None = None) -> None:
        """Time passed (``now``: a monotonic clock). Ends an expired resume hold; starts a replay after a hub
        reconnect. With ``wall`` (wall-clock time, on the periodic wake-ups): a user session past its expiry is
        revoked."""
        if wall is not None and self.expires_at is not None and wall >= self.expires_at:
            logger.info("ws4redis: session of %s expired; closing its websocket", self.label)
            self.revoke()
            return
        if self._hold_until is not None and now >= self._hold_until:
            self._hold_until = None
            self._late = True
        recovery = self.recovery
        if recovery.pending and self._hold_until is None and self.state is State.OPEN:
            recovery.pending = False
            self._emit(act.Replay("reconnect", dict(recovery.last), live=False))

    # -- events: from the hub (another task: queue, never block) --------------------------------------------------
    def deliver(self, delivery: Delivery) -> int:
        """Queue a message from the hub. Returns ``DROPPED``, ``QUEUED``, ``FIRST`` or ``WAKE`` (see there); every
        way out of here counts the delivery done for this socket (``metrics.done``), now or once drained."""
        if delivery.event and self.protocol.name is None:
            metrics.done(delivery)
            return DROPPED  # join/leave events are v2 control messages; a legacy client would take them for data
        own = self._own
        # An own echo on a history channel is queued like any message and skipped by drain after Recovery.fresh:
        # its id must advance the replay position in order, or a hub reconnect replays it back.
        if own and (delivery.id is None or not self.recovery.enabled) and (delivery.channel, delivery.data) in own:
            own.remove((delivery.channel, delivery.data))
            metrics.done(delivery)
            return DROPPED
        state = self.state
        if state is not _OPEN and state is not _OPENING:  # identity, not the enum's hash: per socket per message
            metrics.done(delivery)
            return DROPPED
        size = len(delivery.data) + QUEUE_ENTRY_BYTES
        limit = self.config.queue_bytes
        if self.queued_bytes + size > limit:
            if self.config.drop_oldest:
                self._drop_to_fit(size)
            if self.queued_bytes + size > limit:
                metrics.DROPPED.labels("slow_consumer").inc(len(self.queue) + 1)
                logger.warning(
                    "ws4redis: closing slow consumer %s: %d bytes queued, limit %d (WS4REDIS_QUEUE_BYTES)",
                    self.label, self.queued_bytes + size, limit,
                )
                self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
                metrics.done(delivery)
                return WAKE
        queue = self.queue
        queue.append(delivery)
        self.queued_bytes += size
        return FIRST if len(queue) == 1 else QUEUED

    def _drop_to_fit(self, size: int) -> None:
        """The "drop-oldest" policy: make room by discarding the oldest queued messages, counted and logged.

        Drops until the client is told are summed into one ``gap`` notice and logged once: a client that stopped
        reading while the drops go on must not grow a list of notices, nor the log, per message.
        """
        dropped = 0
        limit = self.config.queue_bytes
        while self.queue and self.queued_bytes + size > limit:
            oldest = self.queue.pop(0)
            self.queued_bytes -= len(oldest.data) + QUEUE_ENTRY_BYTES
            metrics.done(oldest)
            dropped += 1
        if dropped:
            metrics.DROPPED.labels("slow_consumer_oldest").inc(dropped)
            if not self._gaps:
                logger.warning("ws4redis: dropping the oldest message(s) for slow consumer %s", self.label)
            self._gaps += dropped

    def _discard_queue(self) -> None:
        """Empty the queue of messages that will never be written (closing, closed): each counted done."""
        queue, self.queue, self.queued_bytes = self.queue, [], 0
        for delivery in queue:
            metrics.done(delivery)

    # -- events: from the client ----------------------------------------------------------------------------------
    def receive(self, data: bytes, *, text: bool | None, allow: Callable[[], bool]) -> None:
        """One message from the client (hostile until proven otherwise), in a text frame when ``text``.

        ``allow()`` spends one token of the socket's allowance for requests that are not publishes
        (``WS4REDIS_CONTROL_RATE``, shared with ping and pong frames in the transport). Ignored once closing.
        """
        if self.state is not State.OPEN:
            return
        if len(data) > self.config.max_message_size:
            metrics.DROPPED.labels("message_too_big").inc()
            logger.warning("ws4redis: %s sent %d bytes, limit %d", self.label, len(data), self.config.max_message_size)
            self.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        incoming = self.protocol.incoming(data, text=text)
        if incoming.publish is None and not allow():
            metrics.RATE_LIMITED.labels("control").inc()
            logger.warning("ws4redis: %s sent requests faster than WS4REDIS_CONTROL_RATE; closing", self.label)
            self._error("too many requests")
            self.close(CloseCode.POLICY_VIOLATION, "too many requests")
            return
        if incoming.resume is not None:
            self._resume(incoming.resume)
        self._hold_until = None  # the client has spoken: no resume comes before live messages now
        if incoming.reply is not None:
            self._emit(act.Send(*incoming.reply))
        if incoming.publish is not None:
            self._client_publish(incoming.publish, incoming.text)
        if incoming.change is not None:
            self._change(incoming.change)

    def _client_publish(self, data: bytes, text: bool) -> None:
        rate = self.config.publish_rate
        if rate and self._bucket is None:  # starts full, as it would have at the opening
            self._bucket = TokenBucket(rate, self.config.publish_burst)
        if self._bucket is not None and not self._bucket.take(time.monotonic()):
            metrics.DROPPED.labels("rate_limited").inc()
            metrics.RATE_LIMITED.labels("publish").inc()
            logger.warning("ws4redis: %s published faster than WS4REDIS_PUBLISH_RATE; closing", self.label)
            self._error("rate limited")
            self.close(CloseCode.RATE_LIMITED, "rate limited")
            return
        if not self.publish:
            # Not silent: counted, and a v2 client is told (the original dropped it without a word).
            metrics.DROPPED.labels("not_allowed_to_publish").inc()
            self._error("not allowed to publish")
            return
        if self.hooked_publish:
            self._emit(act.RunMessageHook(data, text))
        else:
            self._publish(data, text)

    def hooked(self, data: bytes | None, text: bool) -> None:
        """Outcome of ``RunMessageHook``: the bytes to publish (in the client's frame type), ``None`` to drop."""
        if data is not None and self.state is State.OPEN:
            self._publish(data, text)

    def hook_failed(self) -> None:
        """The message hook raised: the client is told, the socket closed with 1011."""
        self._error("internal error")
        self.close(CloseCode.INTERNAL_ERROR, "hook failed")

    def _publish(self, data: bytes, text: bool) -> None:
        listen = self.listen
        echoed = [channel for channel in self.publish if channel in listen]
        if echoed and self._own is None and not self.echo:  # listening since a v2 subscribe
            self._own = collections.deque(maxlen=_OWN_ECHOES)
        if self._own is not None:
            self._own.extend((channel, data) for channel in echoed)
        self._emit(act.Publish(tuple(self.publish), data, text))

    def _error(self, reason: str, **fields: Any) -> None:
        frame = self.protocol.control("error", reason=reason, **fields)
        if frame is not None:
            self._emit(act.Send(*frame))

    # -- run-time subscriptions (v2) -------------------------------------------------------------------------------
    def _change(self, change: Change) -> None:
        self._emit(act.Subscribe(change) if change.kind == "subscribe" else act.Unsubscribe(change))

    def subscribed(self, change: Change, audiences: Iterable[str], new: list[str]) -> None:
        """Outcome of ``Subscribe``: granted ``audiences``; ``new`` the channels the driver attached (confirmed).
        Emits ``ReadPositions`` for new history channels, the answer, then ``SendKept`` for the new channels."""
        if new:
            self.listen.extend(new)
            if any(self.recovery.track(c) for c in new):
                self._emit(act.ReadPositions(tuple(new)))
        answer = self.protocol.control("subscribed", facility=change.facility, audiences=sorted(audiences))
        if answer is not None:
            self._emit(act.Send(*answer))
        if new and self.config.expire:
            self._emit(act.SendKept(tuple(new)))

    def unsubscribed(self, change: Change, gone: Iterable[str]) -> None:
        """Outcome of ``Unsubscribe``: the driver detached ``gone``; messages of those channels already queued must
        not arrive after the answer, and their history positions are forgotten (else they grow without bound)."""
        gone = set(gone) & set(self.listen)
        if gone:
            self.listen[:] = [c for c in self.listen if c not in gone]
            kept = [d for d in self.queue if d.channel not in gone]
            for delivery in self.queue:
                if delivery.channel in gone:
                    metrics.done(delivery)
            self.queue = kept
            self.queued_bytes = sum(len(d.data) + QUEUE_ENTRY_BYTES for d in kept)
            self.recovery.forget(gone)
        answer = self.protocol.control("unsubscribed", facility=change.facility, audiences=sorted(change.audiences))
        if answer is not None:
            self._emit(act.Send(*answer))

    def refused(self, change: Change, reason: str) -> None:
        """A ``Subscribe``/``Unsubscribe`` the policy, a hook or the hub refused: counted, the client told why."""
        metrics.DROPPED.labels(f"{change.kind}_refused").inc()
        self._error(reason or "permission denied", request=change.kind, facility=change.facility)

    def kept(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Kept last messages (``WS4REDIS_EXPIRE``) the driver read, as ``(channel, payload)``: sent as messages."""
        frame = self.protocol.frame
        for channel, data in messages:
            if data:
                self._emit(act.Send(*frame(Delivery(channel, data, is_text(data)))))

    # -- history (ws4redis.broker.history): resume and replay ----------------------------------------------------------
    def _history_welcome(self) -> dict[str, Any]:
        """``offsets`` for the v2 welcome: where each history stream stood, so a client that receives nothing on a
        stream before it drops can still resume it."""
        if not self.recovery.last:
            return {}
        prefix = self.config.prefix
        return {"offsets": {origin_of(c, prefix=prefix).stream: i for c, i in self.recovery.offsets().items()}}

    def _resume(self, since: dict[str, str]) -> None:
        """A v2 ``resume``: emits ``Replay`` of what the client missed (answered in ``replayed``).

        A stream on which this socket already sent messages (no hold, ``WS4REDIS_RESUME_WAIT = 0``, or a second
        resume) is ``late`` when the client asks for more than what followed them: nothing could put it in order.
        Every stream of the socket without history is reported as not recovered: the client may have missed
        messages there and nothing can tell it which.
        """
        prefix = self.config.prefix
        recovery = self.recovery
        stream_of = {channel: origin_of(channel, prefix=prefix).stream for channel in self.listen}
        channel_of = {stream: channel for channel, stream in stream_of.items()}
        reasons: dict[str, str] = {}
        positions: dict[str, StreamId] = {}
        sent = recovery.sent
        for stream, raw in since.items():
            channel = channel_of.get(stream)
            if channel is None or not recovery.track(channel):
                continue  # not one of this socket's streams, or one without history (reported below)
            parsed = parse_stream_id(raw)
            if parsed is None:
                reasons[stream] = "bad id"
            elif self._late or (channel in sent and parsed < recovery.last[channel]):
                reasons[stream] = "late"  # live messages went out already: a replay could not go before them
            else:
                positions[channel] = parsed
        for channel in self.listen:
            if not recovery.track(channel):
                reasons[stream_of[channel]] = "no history"
        replay = act.Replay("resume", positions, live=True, reasons=reasons)
        if positions:
            self._emit(replay)
        else:
            self.replayed(replay, [], [])

    def replayed(self, replay: act.Replay, messages: Replayed, lost: Iterable[str]) -> None:
        """Outcome of ``Replay``: the replayed messages are sent, then (resume) ``recovered`` or ``not_recovered``,
        or (reconnect) ``reconnected`` naming what may be lost, silent when everything was recovered."""
        frame = self.protocol.frame
        for channel, message_id, data, text in messages:
            self._emit(act.Send(*frame(Delivery(channel, data, text, message_id))))
        prefix = self.config.prefix
        if replay.reason == "reconnect":
            missing = [c for c in self.listen if c not in self.recovery.last] + list(lost)
            metrics.RECOVERIES.labels("not_recovered" if missing else "recovered").inc()
            if missing:
                notice = self.protocol.control(
                    "reconnected", streams=sorted(origin_of(c, prefix=prefix).stream for c in missing),
                    replayed=len(messages),
                )
                if notice is not None:
                    self._emit(act.Send(*notice))
            return
        reasons = dict(replay.reasons)
        for channel in lost:
            reasons[origin_of(channel, prefix=prefix).stream] = "window exceeded"
        if reasons:
            metrics.RECOVERIES.labels("not_recovered").inc()
            answer = self.protocol.control(
                "not_recovered", streams=sorted(reasons), reason=reasons[min(reasons)], reasons=reasons,
                replayed=len(messages),
            )
        else:
            metrics.RECOVERIES.labels("recovered").inc()
            streams = sorted(origin_of(c, prefix=prefix).stream for c in replay.since)
            answer = self.protocol.control("recovered", streams=streams, replayed=len(messages))
        if answer is not None:
            self._emit(act.Send(*answer))

    def replay_failed(self, replay: act.Replay) -> None:
        """``Replay`` failed (Redis): a resume is answered as lost (told, not closed: the client reloads its state);
        a reconnect replay is tried again at the next ``tick``."""
        logger.warning("ws4redis: history replay for %s failed", self.label)
        if replay.reason == "reconnect":
            self.recovery.pending = True
            return
        self.replayed(replay, [], list(replay.since))

    # -- internals ------------------------------------------------------------------------------------------------
    def _emit(self, action: act.Action) -> None:
        if self._actions is None:
            self._actions = [action]
        else:
            self._actions.append(action)
