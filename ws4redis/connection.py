"""The connection loop: one per websocket, run by a greenlet of that websocket's own, or by none while it is idle.

The hub only queues (``deliver``). Once it has read all that Redis sent so far, one loop callback (``_Writer``)
writes the queue of every connection whose greenlet is idle or parked in one non-blocking write: no greenlet switch,
so a fan-out to a thousand quiet sockets is a thousand writes, and a burst is one write per socket. Whatever cannot
go out so waits for the connection's own greenlet.

Every other wake-up source (the socket became readable, a close was requested, the periodic duties are due, the
socket buffer was full) calls ``_kick``: it wakes the connection's greenlet, or spawns one when it has none. The
greenlet drains the socket until empty and then the queue until empty, so no message waits for the next event, in
rounds of bounded work (``_MESSAGES_PER_ROUND``; the transport's frame budget): between two rounds it waits for the
loop's next iteration, so one client writing as fast as it can never holds the worker. Every send that may wait (a
full socket buffer, a control message, a close) happens in it, so a slow client never stalls the hub.

A greenlet is the dearest part of an idle websocket (bench/: about 8 KB parked, and under uWSGI a whole parked
request); so a connection gives its greenlet back ("parks") right after it opened, and whenever a periodic wake-up
finds it had nothing to do since the previous one. A busy connection keeps its greenlet between events (waking a
parked greenlet costs about a sixth of spawning one). Whatever ends the websocket, the connection detaches from the
hub, exactly once (``_end``).
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import redis

from ws4redis import history, metrics, settings
from ws4redis.auth import Handshake
from ws4redis.exceptions import CloseCode, ConnectionClosed, TooManyConnections
from ws4redis.framing import encode_frame
from ws4redis.hooks import HookFailed, hooks_for
from ws4redis.hub import Delivery, Hub, is_text
from ws4redis.limits import TokenBucket
from ws4redis.presence import tracker_for
from ws4redis.presence_signals import online_tracker
from ws4redis.protocol import WireProtocol, origin_of, protocol_for
from ws4redis.quota import ConnectionQuota
from ws4redis.redis_store import get_connection, publish_pipeline
from ws4redis.transports import Transport

if TYPE_CHECKING:
    from django.http import HttpRequest

    from ws4redis.multiplex import Grant
    from ws4redis.protocol import Change

__all__ = ["Connection"]

logger = logging.getLogger(__name__)

_OWN_ECHOES = 64  # own publishes remembered for echo suppression; more in flight than this is not plausible
# Client messages handled per round at most; then the greenlet yields so that one client writing as fast as it can
# does not hold the worker (issue 19: a ping flood delayed every other socket's deliveries by seconds).
_MESSAGES_PER_ROUND = 32
# What one queued message costs beyond its payload (its list slot, its share of the Delivery): counted against
# WS4REDIS_QUEUE_BYTES, so a client that stops reading cannot make the queue of a flood of empty messages unbounded.
_QUEUE_ENTRY_BYTES = 64
_YIELD = 0.001  # seconds: a timer, so the greenlet resumes after the loop's next poll for I/O


class _Writer:
    """Writes the queues of idle connections once the hub has read all that Redis sent so far.

    ``deliver`` runs in the hub's reader greenlet, one message at a time. Connections whose greenlet is idle or
    parked register here when their queue becomes non-empty, and one loop callback writes each of their queues
    with one non-blocking write: it runs when the reader would wait for more, so a burst of messages is one write
    per socket, a lone message goes out at once, and no greenlet is woken for either (a switch per socket per
    message was most of a fan-out's latency, bench/).
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: list[Connection] = []

    def add(self, connection: Connection) -> None:
        if not self._pending:
            gevent.get_hub().loop.run_callback(self._write)
        self._pending.append(connection)

    def _write(self) -> None:
        pending, self._pending = self._pending, []
        written = 0
        for connection in pending:
            try:
                written += connection.write_nowait()
            except Exception:  # one broken connection must not stop the writes to the others
                logger.exception("ws4redis: writing to a websocket failed")
        if written:
            metrics.DELIVERED.inc(written)  # once per round of writes, not per socket


def _writer() -> _Writer:
    """The writer of this thread's event loop: one per gevent hub (several only under Django's threaded server,
    ``ws4redis.threaded``, where each websocket's thread runs a loop of its own)."""
    hub = gevent.get_hub()
    writer: _Writer | None = getattr(hub, "ws4redis_writer", None)
    if writer is None:
        writer = hub.ws4redis_writer = _Writer()
    return writer


class Connection:
    """One websocket: its queue, its wake-up event and its loop.

    Slotted: an idle websocket is mostly this object, and a dict for its forty attributes cost 1.7 KB of it (bench/).
    """

    __slots__ = (
        "_attached", "_bucket", "_busy", "_close", "_control_frames", "_drop_oldest", "_due", "_ended", "_expires_at",
        "_gaps", "_greenlet", "_handshake", "_hold_timer", "_hold_until", "_hooks", "_identity", "_interval",
        "_kicked", "_label", "_late", "_listen", "_max_message", "_online", "_own", "_presence", "_publish", "_queue",
        "_queue_limit", "_queued_bytes", "_quota", "_readable", "_recovery", "_request", "_runtime", "_subscription",
        "_timer", "_waiter", "_watcher", "_working", "hub", "protocol", "transport",
    )

    def __init__(self, transport: Transport, handshake: Handshake, hub: Hub) -> None:
        self.transport = transport
        self.hub = hub
        # The handshake until the opening is done; after it only what the connection still uses (see _opened).
        self._handshake: Handshake | None = handshake
        self._request: HttpRequest | None = handshake.request
        self._subscription = handshake.subscription
        self._label = handshake.label
        self._identity = handshake.identity
        self.protocol: WireProtocol = protocol_for(handshake.subprotocol, heartbeat=settings.get("WS4REDIS_HEARTBEAT"))
        self._listen = handshake.listen
        self._publish = handshake.publish
        self._queue: list[Delivery] = []  # a list: an empty deque is 760 B, and the queue is drained whole
        self._queued_bytes = 0
        self._queue_limit = int(settings.get("WS4REDIS_QUEUE_BYTES"))
        self._max_message = int(settings.get("WS4REDIS_MAX_MESSAGE_SIZE"))
        self._kicked = False  # _kick was called since the greenlet's round began
        self._waiter: gevent.event.Event | None = None  # what a busy greenlet waits on; parked ones have none
        # The greenlet serving this connection, or None while parked. The request's greenlet serves it first.
        self._greenlet: Any = gevent.getcurrent()
        self._busy = False  # something happened since the last periodic wake-up
        self._ended = False
        self._watcher: Any = None
        self._timer: Any = None
        self._close: ConnectionClosed | None = None
        # Echo suppression by origin: (channel, payload) of this socket's own publishes not yet seen coming back.
        suppress = not handshake.subscription.echo and bool(set(self._listen) & set(self._publish))
        self._own: collections.deque[tuple[str, bytes]] | None = (
            collections.deque(maxlen=_OWN_ECHOES) if suppress else None
        )
        self._attached = False
        # Facilities subscribed at run time whose disconnect hook is due when they go (_remember_disconnect).
        self._runtime: dict[str, tuple[Grant, set[str]]] | None = None
        self._control_frames: list[tuple[bytes, bool]] = []  # v2 notices waiting for the greenlet
        self._gaps = 0  # messages dropped (drop-oldest) that the client has not been told of yet
        self._hooks = hooks_for(handshake.subscription.facility)  # resolved once per facility; None kinds cost nothing
        self._drop_oldest = settings.get("WS4REDIS_SLOW_CONSUMER") == "drop-oldest"
        self._bucket: TokenBucket | None = None  # made by the first publish: most sockets never publish
        self._expires_at = handshake.session_expiry  # wall-clock time, or None
        self._quota: ConnectionQuota | None = None
        self._readable = True  # drain once at the start: the client may have spoken before the watcher existed
        self._due = False
        self._working = True  # the greenlet is opening or in a round: what it sends must not be overtaken
        # History (ws4redis.history) and presence (ws4redis.presence): nothing to do on facilities without them.
        self._recovery = history.recovery_for(self._listen)
        self._hold_until: float | None = None  # v2 with history: live messages wait for the client's resume until
        self._hold_timer: Any = None
        self._late = False  # the wait ran out: a resume now could not be put in order with what went out live
        identity = dict(self._identity)
        self._presence = tracker_for(self._listen, user=identity.get("user"), session_key=identity.get("session"))
        self._interval = min(float(settings.get("WS4REDIS_WAKE_INTERVAL")), self._presence.refresh_every)
        # Online/offline signals (ws4redis.presence_signals): None on facilities without presence.
        self._online = online_tracker(self._listen, user=identity.get("user"), session_key=identity.get("session"))

    # -- called by the hub (another greenlet): queue and wake, never block ---------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        # Every way out of here counts the delivery done for this socket (metrics.done), now or once written.
        if delivery.event and self.protocol.name is None:
            metrics.done(delivery)
            return  # join/leave events are v2 control messages; a legacy client would take them for data
        own = self._own
        # An own echo on a history channel is queued like any message and skipped by _drain_queue after
        # Recovery.fresh: its id must advance the replay position in order, or a hub reconnect replays it back.
        if own and (delivery.id is None or not self._recovery.enabled) and (delivery.channel, delivery.data) in own:
            own.remove((delivery.channel, delivery.data))
            metrics.done(delivery)
            return
        if self._close is not None or self._ended:
            metrics.done(delivery)
            return
        size = len(delivery.data) + _QUEUE_ENTRY_BYTES
        if self._queued_bytes + size > self._queue_limit and self._drop_oldest:
            self._drop_to_fit(size)
        if self._queued_bytes + size > self._queue_limit:
            metrics.DROPPED.labels("slow_consumer").inc(len(self._queue) + 1)
            logger.warning(
                "ws4redis: closing slow consumer %s: %d bytes queued, limit %d (WS4REDIS_QUEUE_BYTES)",
                self._label, self._queued_bytes + size, self._queue_limit,
            )
            self.request_close(CloseCode.SLOW_CONSUMER, "slow consumer")
            metrics.done(delivery)
            return
        self._queue.append(delivery)
        self._queued_bytes += size
        if self._working:
            self._busy = True
            self._kick()
        elif len(self._queue) == 1:  # the greenlet is idle or parked: written without it, if the socket takes it
            _writer().add(self)

    def write_nowait(self) -> int:
        """Write the whole queue in one non-blocking write, outside this connection's greenlet (``_Writer``);
        returns how many messages went out. Whatever cannot go out so is left to the greenlet, which is woken: the
        greenlet is in a round (its sends, a welcome, kept messages, an answer, must not be overtaken), control
        messages or a close are pending, the client is held for its resume, the socket has history (each message
        needs ``Recovery.fresh`` exactly once, in the greenlet), or the socket buffer is full."""
        queue = self._queue
        if not queue or self._ended:
            return 0
        if (
            self._working or self._control_frames or self._gaps or self._close is not None
            or self._hold_until is not None
            or self._recovery.enabled or not self.transport.send_nowait(b"".join([self._wire(d) for d in queue]))
        ):
            self._busy = True
            self._kick()
            return 0
        self._queue = []
        self._queued_bytes = 0
        for delivery in queue:
            self._delivered(delivery)
        if self.transport.backlog:  # part of it is still unwritten: the greenlet waits for room and finishes it
            self._kick()
        return len(queue)

    def _wire(self, delivery: Delivery) -> bytes:
        """The frame of ``delivery`` for this socket's wire protocol, encoded by the first socket that needs it."""
        key = self.protocol.wire_key
        wire: bytes | None = delivery.cache.get(key)
        if wire is None:
            payload, text = self.protocol.frame(delivery)
            wire = delivery.cache[key] = encode_frame(payload, text=text)
        return wire

    #: Count one socket done with a delivery; the worker's last one records its fan-out latency (``metrics.done``).
    _delivered = staticmethod(metrics.done)

    def _discard_queue(self) -> None:
        """Empty the queue of messages that will never be written (closing, ended): each counted done."""
        queue, self._queue, self._queued_bytes = self._queue, [], 0
        for delivery in queue:
            metrics.done(delivery)

    def _drop_to_fit(self, size: int) -> None:
        """The "drop-oldest" policy: make room by discarding the oldest queued messages, counted and logged.

        Drops until the client is told are summed into one ``gap`` notice (``_gaps``) and logged once: a client
        that stopped reading while the drops go on must not grow a list of notices, nor the log, per message.
        """
        dropped = 0
        while self._queue and self._queued_bytes + size > self._queue_limit:
            oldest = self._queue.pop(0)
            self._queued_bytes -= len(oldest.data) + _QUEUE_ENTRY_BYTES
            metrics.done(oldest)
            dropped += 1
        if dropped:
            metrics.DROPPED.labels("slow_consumer_oldest").inc(dropped)
            if not self._gaps:
                logger.warning("ws4redis: dropping the oldest message(s) for slow consumer %s", self._label)
            self._gaps += dropped

    def hub_reconnected(self) -> None:
        """Messages published while the hub was disconnected are gone; a v2 client is told (see protocol).

        Channels with history are replayed instead, in this connection's greenlet (``_catch_up``).
        """
        if isinstance(self._recovery, history.Recovery) and self._recovery.enabled:
            self._recovery.pending = True
            self._kick()
            return
        metrics.RECOVERIES.labels("not_recovered").inc()
        frame = self.protocol.control("reconnected")
        if frame is not None:
            self._control_frames.append(frame)
            self._kick()

    def revoke(self) -> None:
        """Logged out, session deleted or user deactivated: tell a v2 client, then close with 4003.

        Once only: a logout both signals and deletes the session, so two revocations arrive for one socket.
        """
        if self._close is not None:
            return
        frame = self.protocol.control("revoked")
        if frame is not None:
            self._control_frames.append(frame)
        self.request_close(CloseCode.REVOKED, "revoked")

    def shutdown(self, reconnect_in_ms: int) -> None:
        """Drained (a reload or shutdown): a v2 client is told when to come back, then the socket closes with 1001."""
        if self._close is not None:
            return
        frame = self.protocol.control("shutdown", reconnect_in=reconnect_in_ms)
        if frame is not None:
            self._control_frames.append(frame)
        self.request_close(CloseCode.GOING_AWAY, f"reconnect_in={reconnect_in_ms}")

    def request_close(self, code: int, reason: str) -> None:
        """Close this websocket from any greenlet: the loop sends what it can and exits."""
        if self._close is None:
            self._close = ConnectionClosed(code, reason)
            self._discard_queue()
        self._kick()

    def _kick(self) -> None:
        """Wake this connection's greenlet, or spawn one if it is parked (any greenlet, or the event loop, may call)."""
        self._kicked = True
        if self._greenlet is None:
            if not self._ended:
                self._greenlet = gevent.spawn(self._serve, False)
        elif self._waiter is not None:
            self._waiter.set()

    # -- the connection's own greenlet -------------------------------------------------------------------------
    def open(self) -> None:
        """Subscribe through the hub (confirmed by Redis) before the upgrade; raises ``HubUnavailable``."""
        limit = settings.get("WS4REDIS_MAX_CONNECTIONS_PER_USER")
        user = [name for kind, name in self._identity if kind == "user"]
        if limit and user:
            quota = ConnectionQuota(user[0], int(limit))
            if not quota.acquire():
                raise TooManyConnections(f"at most {limit} websockets per user (WS4REDIS_MAX_CONNECTIONS_PER_USER)")
            self._quota = quota
        timeout = float(settings.get("WS4REDIS_SUBSCRIBE_TIMEOUT"))
        try:
            self.hub.attach(self, self._listen, timeout=timeout, identity=self._identity)
        except BaseException:
            self._release_quota()
            raise
        self._attached = True
        self._start_history()

    def run(self) -> None:
        """Upgrade, send the kept messages, serve what is pending, then park; returns while the websocket stays open.

        The caller (the request's greenlet) may return at once: the transport works on its own descriptor.
        """
        try:
            assert self._handshake is not None
            self.transport.accept(self._handshake.subprotocol)
            metrics.CONNECTIONS.inc()
            facility = self._subscription.facility
            logger.info("ws4redis: websocket open for %s on %s", self._label, facility)
            loop = gevent.get_hub().loop
            self._watcher = loop.io(self.transport.fileno(), 1)
            self._watcher.start(self._on_readable)
            # One repeating timer for the idle duties, not a Timeout object per wait (bench/: 5% of a fan-out).
            self._timer = loop.timer(self._interval, self._interval)
            self._timer.start(self._on_timer)
            if self._presence.channels:
                self._presence.join(get_connection())
            if self._online is not None:
                self._online.connect(get_connection())
            self._send_welcome()
            self._send_kept()
            self._opened()
        except BaseException as exc:
            self._end(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._serve(True)

    def _serve(self, park: bool) -> None:
        """The body of this connection's greenlet: rounds until parked or ended (``park``: as soon as idle)."""
        try:
            self._rounds(park)
        except BaseException as exc:
            self._end(exc)
            if not isinstance(exc, Exception):
                raise

    def _end(self, exc: BaseException) -> None:
        """Tear down once, whatever ended the websocket: watchers, hub, quota, presence, socket, metrics, hook."""
        if self._ended:
            return
        self._ended = True
        self._greenlet = None
        if isinstance(exc, ConnectionClosed):
            code, reason = exc.code, exc.reason
        elif isinstance(exc, Exception):
            code, reason = CloseCode.INTERNAL_ERROR, "internal error"
            logger.error("ws4redis: websocket of %s failed", self._label, exc_info=exc)
        else:  # GreenletExit, KeyboardInterrupt: the process is going away
            code, reason = CloseCode.GOING_AWAY, ""
        for watcher in (self._watcher, self._timer, self._hold_timer):
            if watcher is not None:
                watcher.stop()
        if self._watcher is not None:
            metrics.CONNECTIONS.dec()
        self.release()
        self._discard_queue()  # what was queued when the socket ended (the client left mid-burst)
        self.transport.close(code, reason)
        metrics.CLOSED.labels(str(int(code))).inc()
        logger.info("ws4redis: websocket closed for %s (%d %s)", self._label, code, reason)
        self._hooks.run_disconnect(self._request, self._subscription)
        runtime, self._runtime = self._runtime, None
        for grant, _channels in (runtime or {}).values():
            grant.hooks.run_disconnect(grant.request, grant.subscription)

    def release(self) -> None:
        """Detach from the hub (idempotent): whatever ended the connection, its channels are released."""
        if self._attached:
            self._attached = False
            self.hub.detach(self, self._listen, identity=self._identity)
        self._release_quota()
        if self._presence.channels:
            self._presence.leave(get_connection())
        if self._online is not None:
            self._online.disconnect(get_connection())

    def _release_quota(self) -> None:
        quota, self._quota = self._quota, None
        if quota is not None:
            try:
                quota.release()
            except Exception:  # Redis down: the entry expires by itself
                logger.warning("ws4redis: could not release a connection quota entry; it will expire")

    def _send_welcome(self) -> None:
        """Tell a v2 client what it got (the policy may have narrowed what it asked for); legacy gets nothing."""
        sub = self._subscription
        welcome = self.protocol.control(
            "welcome", facility=sub.facility, subscribe=sorted(sub.subscribe), publish=sorted(sub.publish),
            **self._history_welcome(),
        )
        if welcome is not None:
            self._send(*welcome)

    def _send_kept(self) -> None:
        assert self._handshake is not None
        subscriber = self._handshake.subscriber
        for channel, data in subscriber.get_persisted_messages():
            subscriber.channel_connected(channel, self._handshake.request)
            self._send(*self.protocol.frame(Delivery(channel, data, is_text(data))))

    def _opened(self) -> None:
        """Let go of what only the opening needed. The Django request (its environ, session, user, query dict:
        about 2.5 KB, bench/) stays only where something can still use it: a v2 client may change its subscriptions
        (authorised with the request), and the message and disconnect hooks receive it."""
        self._handshake = None
        if self.protocol.name is None and self._hooks.message is None and self._hooks.disconnect is None:
            self._request = None

    def _on_readable(self) -> None:
        self._readable = True
        self._busy = True
        self._kick()

    def _on_timer(self) -> None:
        self._due = True
        self._kick()

    def _rounds(self, park: bool) -> None:
        """Serve until nothing is pending; then park if ``park`` (set again by a periodic wake-up after a quiet
        period), else wait for the next event."""
        while True:
            self._kicked = False
            self._working = True
            if self._close is not None:
                self._flush_control()
                raise self._close
            if self._due:
                self._due = False
                park, self._busy = not self._busy, False
                if self._idle_checks():
                    continue
                self._readable = True  # the transport checks its liveness (pings, pong timeout) when it reads
            if self._readable:  # a wake-up by the hub alone costs no receive call
                self._readable = False  # before the drain: a readability reported while it runs is kept
                if self._drain_socket():
                    self._readable = True  # the round's budget ran out with input left
            self._flush_control()
            self._catch_up()
            self._drain_queue()
            if self._readable:
                # Input is left but this round had its share: wait for the loop's next iteration, so every other
                # runnable greenlet and every ready socket (the hub's reader, the other clients) goes first.
                # (sleep(0) resumes before the loop polls for I/O, up to 50 times in a row: measured 40-60 ms
                # median delays for the others during a flood, against under 10 ms with this.)
                gevent.sleep(_YIELD)
                continue
            if not self._kicked:
                self._working = False  # from here the hub may write to the socket itself (_Writer)
                if park:
                    # No switch between this and the return: a later _kick spawns anew.
                    self._greenlet = self._waiter = None
                    return
                if self._waiter is None:
                    self._waiter = gevent.event.Event()
                self._waiter.clear()  # no switch since _kicked was read: a kick from here on sets it
                self._waiter.wait()

    def _idle_checks(self) -> bool:
        """Periodic duties, cheap enough for every wake-up: session expiry and the quota's refresh."""
        if self._expires_at is not None and time.time() >= self._expires_at:
            logger.info("ws4redis: session of %s expired; closing its websocket", self._label)
            self.revoke()
            return True
        if self._quota is not None:
            self._quota.refresh()
        return False

    def _drain_socket(self) -> bool:
        """Handle what the client sent, at most ``_MESSAGES_PER_ROUND`` messages; ``True`` when input is left (the
        round's budget, or the transport's frame budget, ran out), so the caller yields and comes back."""
        receive = self.transport.receive_nowait
        for _ in range(_MESSAGES_PER_ROUND):
            data = receive()  # also answers and sends pings
            if data is None:
                return self.transport.pending
            if len(data) > self._max_message:
                metrics.DROPPED.labels("message_too_big").inc()
                logger.warning(
                    "ws4redis: %s sent %d bytes, limit %d", self._label, len(data), self._max_message
                )
                raise ConnectionClosed(CloseCode.MESSAGE_TOO_BIG, "message too big")
            incoming = self.protocol.incoming(data, text=self.transport.last_text)
            if incoming.publish is None and not self.transport.allow_request():
                self._too_many_requests()
            if incoming.resume is not None:
                self._resume(incoming.resume)
            self._hold_until = None  # the client has spoken: no resume comes before live messages now
            if incoming.reply is not None:
                self._send(*incoming.reply)
            if incoming.publish is not None:
                hooked = self._message_hook(incoming.publish)
                if hooked is not None:  # in the client's frame type (binary if a hook's bytes cannot be text)
                    self._client_publish(hooked, incoming.text)
            if incoming.change is not None:
                self._change_subscription(incoming.change)
        return True

    def _too_many_requests(self) -> None:
        """Requests that are not publishes (v2 ``ping``, ``subscribe``, ``resume``, bad envelopes, the heartbeat)
        faster than ``WS4REDIS_CONTROL_RATE``, sharing the allowance of ping and pong frames: closed with 1008."""
        metrics.RATE_LIMITED.labels("control").inc()
        logger.warning("ws4redis: %s sent requests faster than WS4REDIS_CONTROL_RATE; closing", self._label)
        frame = self.protocol.control("error", reason="too many requests")
        if frame is not None:
            self._send(*frame)
        raise ConnectionClosed(CloseCode.POLICY_VIOLATION, "too many requests")

    def _message_hook(self, data: bytes) -> bytes | None:
        """The facility's message hook (``ws4redis.hooks``): new bytes, or ``None`` to drop; a failure closes 1011."""
        if self._hooks.message is None:
            return data
        try:
            return self._hooks.run_message(self._request, self._subscription, data)
        except HookFailed:
            frame = self.protocol.control("error", reason="internal error")
            if frame is not None:
                self._send(*frame)
            raise ConnectionClosed(CloseCode.INTERNAL_ERROR, "hook failed") from None

    def _change_subscription(self, change: Change) -> None:
        """A v2 ``subscribe``/``unsubscribe`` (``ws4redis.multiplex``): authorised as a connection to that facility
        (policy, ``WS4REDIS_ALLOWED_CHANNELS`` and the facility's connect hook), then answered."""
        from django.core.exceptions import PermissionDenied

        from ws4redis import multiplex
        from ws4redis.exceptions import HandshakeRefused
        from ws4redis.hub import HubUnavailable

        request = self._request
        assert request is not None  # kept for ws4redis.v2 sockets, the only ones that can change subscriptions
        new: list[str] = []  # channels to send kept messages of, once the client has its answer
        try:
            if change.kind == "subscribe":
                grant = multiplex.authorise_subscribe(
                    request, change.facility, change.audiences,
                    echo=self._subscription.echo, listening=len(self._listen),
                )
                new = [c for c in grant.channels if c not in self._listen]
                if new:
                    self.hub.attach(self, new, timeout=float(settings.get("WS4REDIS_SUBSCRIBE_TIMEOUT")))
                    self._listen.extend(new)
                    self._track_history_of(new)
                self._remember_disconnect(grant, new)
                answer = self.protocol.control(
                    "subscribed", facility=change.facility, audiences=sorted(grant.audiences)
                )
            else:
                gone = set(multiplex.channels_to_drop(request, change.facility, change.audiences)) & set(self._listen)
                if gone:
                    self._listen = [c for c in self._listen if c not in gone]
                    self.hub.detach(self, gone)
                    # Already queued messages of those channels must not arrive after the answer either.
                    kept = [d for d in self._queue if d.channel not in gone]
                    for delivery in self._queue:
                        if delivery.channel in gone:
                            metrics.done(delivery)
                    self._queue = kept
                    self._queued_bytes = sum(len(d.data) + _QUEUE_ENTRY_BYTES for d in kept)
                    self._forget_disconnect(change.facility, gone)
                    self._recovery.forget(gone)  # a position per channel ever subscribed would grow without bound
                answer = self.protocol.control(
                    "unsubscribed", facility=change.facility, audiences=sorted(change.audiences)
                )
        except (HandshakeRefused, PermissionDenied, HubUnavailable) as refusal:
            metrics.DROPPED.labels(f"{change.kind}_refused").inc()
            reason = getattr(refusal, "detail", None) or str(refusal) or "permission denied"
            answer = self.protocol.control("error", reason=reason, request=change.kind, facility=change.facility)
            new = []
        if answer is not None:
            self._send(*answer)
        self._send_kept_of(new)

    def _remember_disconnect(self, grant: Grant, channels: list[str]) -> None:
        """A facility subscribed at run time whose hooks have ``disconnect``: run it when its last channel goes
        (unsubscribe or close), with the request its connect hook saw. Bounded: one entry per facility, and the
        socket's channels are bounded by ``WS4REDIS_MAX_SUBSCRIPTIONS``."""
        facility = grant.subscription.facility
        if grant.hooks.disconnect is None or facility == self._subscription.facility or not channels:
            return
        if self._runtime is None:
            self._runtime = {}
        entry = self._runtime.get(facility)
        if entry is None:
            self._runtime[facility] = (grant, set(channels))
        else:
            entry[1].update(channels)

    def _forget_disconnect(self, facility: str, gone: set[str]) -> None:
        entry = self._runtime.get(facility) if self._runtime else None
        if entry is None or self._runtime is None:
            return
        entry[1].difference_update(gone)
        if not entry[1]:
            del self._runtime[facility]
            grant = entry[0]
            grant.hooks.run_disconnect(grant.request, grant.subscription)

    def _track_history_of(self, channels: list[str]) -> None:
        """Channels subscribed at run time that keep history: this socket takes a ``Recovery`` of its own now (never
        the shared ``NoRecovery``) and records where their streams stand, so a hub reconnect replays them too."""
        if not any(history.window_for(c) is not None for c in channels):
            return
        self._recovery = history.own_recovery(self._recovery, self._listen)
        try:
            self._recovery.start(get_connection(), channels, self._first_live)
        except (redis.RedisError, OSError) as exc:  # live delivery still works; a reconnect reports them lost
            logger.warning("ws4redis: could not read history positions for %s (%s)", self._label, exc)

    def _send_kept_of(self, channels: list[str]) -> None:
        """The kept last message of newly subscribed channels, as a new socket gets them (``WS4REDIS_EXPIRE``)."""
        if not channels or not settings.get("WS4REDIS_EXPIRE"):
            return
        values: list[bytes | None] = get_connection().mget(channels)  # type: ignore[assignment]
        for channel, data in zip(channels, values, strict=True):
            if data:
                self._send(*self.protocol.frame(Delivery(channel, data, is_text(data))))

    def _client_publish(self, data: bytes, text: bool) -> None:
        rate = settings.get("WS4REDIS_PUBLISH_RATE")
        if rate and self._bucket is None:  # starts full, as it would have at the opening
            self._bucket = TokenBucket(float(rate), float(settings.get("WS4REDIS_PUBLISH_BURST")))
        if self._bucket is not None and not self._bucket.take(time.monotonic()):
            metrics.DROPPED.labels("rate_limited").inc()
            metrics.RATE_LIMITED.labels("publish").inc()
            logger.warning("ws4redis: %s published faster than WS4REDIS_PUBLISH_RATE; closing", self._label)
            frame = self.protocol.control("error", reason="rate limited")
            if frame is not None:
                self._send(*frame)
            raise ConnectionClosed(CloseCode.RATE_LIMITED, "rate limited")
        if not self._publish:
            # Not silent: counted, and a v2 client is told (the original dropped it without a word).
            metrics.DROPPED.labels("not_allowed_to_publish").inc()
            refusal = self.protocol.control("error", reason="not allowed to publish")
            if refusal is not None:
                self._send(*refusal)
            return
        echoed = [channel for channel in self._publish if channel in self._listen]
        if echoed and self._own is None and not self._subscription.echo:  # listening since a v2 subscribe
            self._own = collections.deque(maxlen=_OWN_ECHOES)
        if self._own is not None:
            self._own.extend((channel, data) for channel in echoed)
        pipe = get_connection().pipeline(transaction=False)
        publish_pipeline(pipe, list(self._publish), data, int(settings.get("WS4REDIS_EXPIRE") or 0), text=text)
        pipe.execute()
        metrics.PUBLISHED_BY_CLIENTS.inc(len(self._publish))

    def _drain_queue(self) -> None:
        if self._hold_until is not None:
            return  # waiting for the client's resume, so that replayed messages go out before live ones
        fresh = self._recovery.fresh
        own = self._own
        queue, self._queue = self._queue, []  # what arrives while this batch is written waits for the next round
        batch: list[bytes] = []
        for delivery in queue:
            self._queued_bytes -= len(delivery.data) + _QUEUE_ENTRY_BYTES
            self._delivered(delivery)
            if delivery.id is not None and not fresh(delivery.channel, delivery.id):
                continue  # already sent by a replay from history
            if delivery.id is not None and own and (delivery.channel, delivery.data) in own:
                own.remove((delivery.channel, delivery.data))
                continue  # this socket's own publish on a history channel (see deliver)
            batch.append(self._wire(delivery))
        if batch or self.transport.backlog:
            self.transport.send_raw(b"".join(batch))
        if batch:
            metrics.DELIVERED.inc(len(batch))

    # -- history and presence (ws4redis.history, ws4redis.presence) --------------------------------------------
    def _start_history(self) -> None:
        """Record each history stream's position now that Redis confirmed the subscriptions; a v2 socket then holds
        live messages until the client resumes (or ``WS4REDIS_RESUME_WAIT`` runs out), so a replay precedes them."""
        if not self._recovery.enabled:
            return
        try:
            self._recovery.start(get_connection(), live=self._first_live)
        except (redis.RedisError, OSError) as exc:
            logger.warning("ws4redis: could not read history positions for %s (%s)", self._label, exc)
            return
        wait = float(settings.get("WS4REDIS_RESUME_WAIT") or 0)
        if self.protocol.name is not None and wait > 0:
            self._hold_until = time.monotonic() + wait
            self._hold_timer = gevent.get_hub().loop.timer(wait)
            self._hold_timer.start(self._kick)

    def _history_welcome(self) -> dict[str, Any]:
        """``offsets`` for the v2 welcome: where each history stream stood, so a client that receives nothing on a
        stream before it drops can still resume it."""
        if not self._recovery.last:
            return {}
        prefix = settings.get("WS4REDIS_PREFIX")
        return {"offsets": {origin_of(c, prefix=prefix).stream: i for c, i in self._recovery.offsets().items()}}

    def _resume(self, since: dict[str, str]) -> None:
        """A v2 ``resume``: replay from history what the client missed, then ``recovered`` or ``not_recovered``.

        A stream on which this socket already sent messages (no hold, ``WS4REDIS_RESUME_WAIT = 0``, or a second
        resume) is ``late`` when the client asks for more than what followed them: nothing could put it in order.

        Every stream of the socket without history is reported as not recovered: the client may have missed
        messages there and nothing can tell it which.
        """
        prefix = settings.get("WS4REDIS_PREFIX")
        stream_of = {channel: origin_of(channel, prefix=prefix).stream for channel in self._listen}
        channel_of = {stream: channel for channel, stream in stream_of.items()}
        reasons: dict[str, str] = {}
        positions: dict[str, history.StreamId] = {}
        for stream, raw in since.items():
            channel = channel_of.get(stream)
            if channel is None or not self._recovery.track(channel):
                continue  # not one of this socket's streams, or one without history (reported below)
            parsed = history.parse_id(raw)
            if parsed is None:
                reasons[stream] = "bad id"
            elif self._late or (channel in self._recovery.sent and parsed < self._recovery.last[channel]):
                reasons[stream] = "late"  # live messages went out already: a replay could not go before them
            else:
                positions[channel] = parsed
        for channel in self._listen:
            if not self._recovery.track(channel):
                reasons[stream_of[channel]] = "no history"
        try:
            messages, lost = (
                self._recovery.replay(get_connection(), positions, self._first_live) if positions else ([], [])
            )
        except (redis.RedisError, OSError) as exc:  # told, not closed: the client reloads its state
            logger.warning("ws4redis: history replay for %s failed (%s)", self._label, exc)
            messages, lost = [], list(positions)
        for channel in lost:
            reasons[stream_of[channel]] = "window exceeded"
        self._send_replayed(messages)
        if reasons:
            metrics.RECOVERIES.labels("not_recovered").inc()
            answer = self.protocol.control(
                "not_recovered", streams=sorted(reasons), reason=reasons[min(reasons)], reasons=reasons,
                replayed=len(messages),
            )
        else:
            metrics.RECOVERIES.labels("recovered").inc()
            streams = sorted(stream_of[c] for c in positions)
            answer = self.protocol.control("recovered", streams=streams, replayed=len(messages))
        if answer is not None:
            self._send(*answer)

    def _catch_up(self) -> None:
        """Per wake-up: end an expired resume wait, replay after a hub reconnect, refresh presence when due."""
        now = time.monotonic()
        if self._hold_until is not None and now >= self._hold_until:
            self._hold_until = None
            self._late = True
        recovery = self._recovery
        if recovery.pending and self._hold_until is None and isinstance(recovery, history.Recovery):
            recovery.pending = False
            self._replay_after_reconnect(recovery)
        if self._presence.channels:
            self._presence.refresh(get_connection, now)
        if self._online is not None:
            self._online.refresh(get_connection, now)

    def _replay_after_reconnect(self, recovery: history.Recovery) -> None:
        """The hub's link dropped and is back: replay each history channel from the last id this socket sent, to
        the stream's end (the live queue has a hole where the link was down; ``fresh`` drops the copies it holds).

        Waits for Redis to confirm the resubscription first, or what is published in between would be lost. Silent
        when everything was recovered; otherwise a v2 client gets ``reconnected`` naming what may be lost.
        """
        prefix = settings.get("WS4REDIS_PREFIX")
        channels = list(recovery.last)
        lost: list[str] = [c for c in self._listen if c not in recovery.last]
        replayed = 0
        if self.hub.confirmed(channels, float(settings.get("WS4REDIS_SUBSCRIBE_TIMEOUT"))):
            try:
                messages, unrecoverable = recovery.replay(get_connection(), dict(recovery.last))
            except (redis.RedisError, OSError) as exc:
                logger.warning("ws4redis: history replay for %s failed (%s)", self._label, exc)
                recovery.pending = True  # tried again at the next wake-up
                return
            self._send_replayed(messages)
            replayed = len(messages)
            lost += unrecoverable
        else:
            lost += channels
        metrics.RECOVERIES.labels("not_recovered" if lost else "recovered").inc()
        if lost:
            frame = self.protocol.control(
                "reconnected", streams=sorted(origin_of(c, prefix=prefix).stream for c in lost), replayed=replayed
            )
            if frame is not None:
                self._send(*frame)

    def _first_live(self) -> dict[str, history.StreamId]:
        """Channel -> the id of its first message in the live queue: where a replay of that channel stops."""
        first: dict[str, history.StreamId] = {}
        for delivery in self._queue:
            if delivery.id is not None and delivery.channel not in first:
                parsed = history.parse_id(delivery.id)
                if parsed is not None:
                    first[delivery.channel] = parsed
        return first

    def _send_replayed(self, messages: list[tuple[str, str, bytes, bool]]) -> None:
        frame = self.protocol.frame
        for channel, message_id, data, text in messages:
            self._send(*frame(Delivery(channel, data, text, message_id)))
        if messages:
            metrics.DELIVERED.inc(len(messages))

    def _flush_control(self) -> None:
        if self._gaps:
            dropped, self._gaps = self._gaps, 0
            gap = self.protocol.control("gap", dropped=dropped)
            if gap is not None:
                self._send(*gap)
        while self._control_frames:
            self._send(*self._control_frames.pop(0))

    def _send(self, data: bytes, text: bool) -> None:
        self.transport.send(data, text=text)
