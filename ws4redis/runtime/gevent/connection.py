"""The gevent driver: one per websocket, run by a greenlet of that websocket's own, or by none while it is idle.

What to do is the session's (``ws4redis.core.Session``: queue policy, client messages, limits, history, notices,
close codes); this module only does the I/O it asks for (``ws4redis.core.actions``) and schedules the greenlet.

The hub only queues (``deliver``). Once it has read all that Redis sent so far, one loop callback (``_Writer``)
writes the queue of every connection whose greenlet is idle or parked in one non-blocking write: no greenlet switch,
so a fan-out to a thousand quiet sockets is a thousand writes, and a burst is one write per socket. Whatever cannot
go out so waits for the connection's own greenlet.

Every other wake-up source (the socket became readable, a close was requested, the periodic duties are due, the
socket buffer was full) calls ``_kick``: it wakes the connection's greenlet, or spawns one when it has none. The
greenlet drains the socket until empty and then the queue until empty, so no message waits for the next event, in
rounds of bounded work (``MESSAGES_PER_ROUND``; the transport's frame budget): between two rounds it waits for the
loop's next iteration, so one client writing as fast as it can never holds the worker. Every send that may wait (a
full socket buffer, a control message, a close) happens in it, so a slow client never stalls the hub.

A greenlet is the dearest part of an idle websocket (bench/: about 8 KB parked, and under uWSGI a whole parked
request); so a connection gives its greenlet back ("parks") right after it opened, and whenever a periodic wake-up
finds it had nothing to do since the previous one. A busy connection keeps its greenlet between events (waking a
parked greenlet costs about a sixth of spawning one). Whatever ends the websocket, the connection detaches from the
hub, exactly once (``_end``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, cast

import gevent
import gevent.event
import redis

from ws4redis import configuration, metrics
from ws4redis.broker import history
from ws4redis.broker.presence import tracker_for
from ws4redis.broker.presence_signals import online_tracker
from ws4redis.broker.quota import ConnectionQuota
from ws4redis.broker.redis_store import get_connection, publish_pipeline
from ws4redis.core import FIRST, WAKE, Session, State, actions
from ws4redis.core.config import MESSAGES_PER_ROUND
from ws4redis.core.protocol import protocol_for
from ws4redis.exceptions import CloseCode, ConnectionClosed, TooManyConnections
from ws4redis.integration.auth import Handshake
from ws4redis.integration.hooks import HookFailed, hooks_for
from ws4redis.runtime.dispatch import write_idle
from ws4redis.runtime.gevent.framing import encode_frame
from ws4redis.runtime.gevent.hub import Delivery, Hub
from ws4redis.runtime.gevent.idle import IdleWheel, wheel_for
from ws4redis.runtime.gevent.transport import Transport

if TYPE_CHECKING:
    from django.http import HttpRequest

    from ws4redis.core.protocol import Change, WireProtocol
    from ws4redis.integration.multiplex import Grant

__all__ = ["Connection"]

logger = logging.getLogger("ws4redis.connection")  # its name before the move: logging configurations keep it

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
        write_idle(pending, logger)


def _writer() -> _Writer:
    """The writer of this thread's event loop: one per gevent hub (several only under Django's threaded server,
    ``ws4redis.servers.threaded``, where each websocket's thread runs a loop of its own)."""
    hub = gevent.get_hub()
    writer: _Writer | None = getattr(hub, "ws4redis_writer", None)
    if writer is None:
        writer = hub.ws4redis_writer = _Writer()
    return writer


class Connection:
    """One websocket on gevent: the driver of its ``Session`` (the policy), with its wake-up event and its loop.

    Slotted: an idle websocket is mostly this object and its session, and a dict of attributes cost 1.7 KB (bench/).
    """

    __slots__ = (
        "_attached", "_busy", "_due", "_ended", "_greenlet", "_handshake", "_hold_timer", "_hooks", "_identity",
        "_interval", "_kicked", "_online", "_presence", "_quota", "_readable", "_request", "_runtime", "_slot",
        "_subscription", "_waiter", "_watcher", "_wheel", "_working", "hub", "session", "transport",
    )

    def __init__(self, transport: Transport, handshake: Handshake, hub: Hub) -> None:
        self.transport = transport
        self.hub = hub
        config = configuration.current()
        # The handshake until the opening is done; after it only what the connection still uses (see _opened).
        self._handshake: Handshake | None = handshake
        self._request: HttpRequest | None = handshake.request
        self._subscription = handshake.subscription
        self._identity = handshake.identity
        listen = handshake.listen
        self._hooks = hooks_for(handshake.subscription.facility)  # resolved once per facility; None kinds cost nothing
        self.session = Session(
            config, protocol_for(handshake.subprotocol, heartbeat=config.heartbeat, prefix=config.prefix),
            listen=listen, publish=handshake.publish, recovery=history.recovery_for(listen),
            echo=handshake.subscription.echo, label=handshake.label, expires_at=handshake.session_expiry,
            message_hook=self._hooks.message is not None,
        )
        self._kicked = False  # _kick was called since the greenlet's round began
        self._waiter: gevent.event.Event | None = None  # what a busy greenlet waits on; parked ones have none
        # The greenlet serving this connection, or None while parked. The request's greenlet serves it first.
        self._greenlet: Any = gevent.getcurrent()
        self._busy = False  # the client or the hub needed the greenlet since the last periodic turn
        self._ended = False
        self._watcher: Any = None
        self._wheel: IdleWheel | None = None  # the worker's timer for the periodic duties, with this socket's slot
        self._slot = 0
        self._hold_timer: Any = None
        self._attached = False
        # Facilities subscribed at run time whose disconnect hook is due when they go (_remember_disconnect).
        self._runtime: dict[str, tuple[Grant, set[str]]] | None = None
        self._quota: ConnectionQuota | None = None
        self._readable = True  # drain once at the start: the client may have spoken before the watcher existed
        self._due = False
        self._working = True  # the greenlet is opening or in a round: what it sends must not be overtaken
        identity = dict(self._identity)
        self._presence = tracker_for(listen, user=identity.get("user"), session_key=identity.get("session"))
        self._interval = min(config.wake_interval, self._presence.refresh_every)
        # Online/offline signals (ws4redis.broker.presence_signals): None on facilities without presence.
        self._online = online_tracker(listen, user=identity.get("user"), session_key=identity.get("session"))

    @property
    def protocol(self) -> WireProtocol:
        """This socket's wire protocol (the session's)."""
        return self.session.protocol

    # -- called by the hub (another greenlet): queue and wake, never block ---------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        result = self.session.deliver(delivery)
        if result:
            if self._working or result == WAKE:
                self._busy = True
                self._kick()
            elif result == FIRST:  # the greenlet is idle or parked: written without it, if the socket takes it
                _writer().add(self)

    def write_nowait(self) -> int:
        """Write the whole queue in one non-blocking write, outside this connection's greenlet (``_Writer``);
        returns how many messages went out. Whatever cannot go out so is left to the greenlet, which is woken: the
        greenlet is in a round (its sends, a welcome, kept messages, an answer, must not be overtaken), the session
        has something else to do first or must filter the queue (``Session.frames_nowait``), or the socket buffer
        is full."""
        session = self.session
        if not session.queue or self._ended:
            return 0
        frames = None if self._working else session.frames_nowait(encode_frame)
        if frames is None or not self.transport.send_nowait(frames):
            self._busy = True
            self._kick()
            return 0
        written = session.flush_queue()
        if self.transport.backlog:  # part of it is still unwritten: the greenlet waits for room and finishes it
            self._busy = True  # a socket whose writes back up keeps its greenlet until a quiet periodic turn
            self._kick()
        return written

    def hub_reconnected(self) -> None:
        """Messages published while the hub was disconnected are gone: the session decides (replay or notice)."""
        if self.session.hub_reconnected():
            self._kick()

    def revoke(self) -> None:
        """Logged out, session deleted or user deactivated: a v2 client is told, then the socket closes with 4003."""
        if self.session.revoke():
            self._kick()

    def shutdown(self, reconnect_in_ms: int) -> None:
        """Drained (a reload or shutdown): a v2 client is told when to come back, then the socket closes with 1001."""
        if self.session.shutdown(reconnect_in_ms):
            self._kick()

    def request_close(self, code: int, reason: str) -> None:
        """Close this websocket from any greenlet: the loop sends what it can and exits."""
        self.session.close(code, reason)
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
        session = self.session
        limit = session.config.max_connections_per_user
        user = [name for kind, name in self._identity if kind == "user"]
        if limit and user:
            quota = ConnectionQuota(user[0], limit)
            if not quota.acquire():
                session.closed()
                raise TooManyConnections(f"at most {limit} websockets per user (WS4REDIS_MAX_CONNECTIONS_PER_USER)")
            self._quota = quota
        try:
            self.hub.attach(self, session.listen, timeout=session.config.subscribe_timeout, identity=self._identity)
        except BaseException:
            self._release_quota()
            session.closed()
            raise
        self._attached = True
        read = session.attached()
        if read is not None:
            self._read_positions(read.channels)

    def run(self) -> None:
        """Upgrade, send the kept messages, serve what is pending, then park; returns while the websocket stays open.

        The caller (the request's greenlet) may return at once: the transport works on its own descriptor.
        """
        session = self.session
        try:
            assert self._handshake is not None
            self.transport.accept(self._handshake.subprotocol)
            metrics.CONNECTIONS.inc()
            sub = self._subscription
            logger.info("ws4redis: websocket open for %s on %s", session.label, sub.facility)
            loop = gevent.get_hub().loop
            self._watcher = loop.io(self.transport.fileno(), 1)
            self._watcher.start(self._on_readable)
            # The periodic duties: a turn on the worker's idle wheel, not a timer per socket (issue 22).
            self._wheel = wheel_for(self._interval)
            self._slot = self._wheel.add(self)
            if self._presence.channels:
                self._presence.join(get_connection())
            if self._online is not None:
                self._online.connect(get_connection())
            if session.state is State.OPENING:  # not closed (revoked, drained) while it opened
                session.opened(sub.facility, subscribe=sub.subscribe, publish=sub.publish)
                self._run(session.take())
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
            logger.error("ws4redis: websocket of %s failed", self.session.label, exc_info=exc)
        else:  # GreenletExit, KeyboardInterrupt: the process is going away
            code, reason = CloseCode.GOING_AWAY, ""
        for watcher in (self._watcher, self._hold_timer):
            if watcher is not None:
                watcher.stop()
        if self._wheel is not None:
            self._wheel.remove(self, self._slot)
        if self._watcher is not None:
            metrics.CONNECTIONS.dec()
        self.release()
        self.session.closed()  # what was queued when the socket ended (the client left mid-burst) is counted done
        self.transport.close(code, reason)
        metrics.CLOSED.labels(str(int(code))).inc()
        logger.info("ws4redis: websocket closed for %s (%d %s)", self.session.label, code, reason)
        self._hooks.run_disconnect(self._request, self._subscription)
        runtime, self._runtime = self._runtime, None
        for grant, _channels in (runtime or {}).values():
            grant.hooks.run_disconnect(grant.request, grant.subscription)

    def release(self) -> None:
        """Detach from the hub (idempotent): whatever ended the connection, its channels are released."""
        if self._attached:
            self._attached = False
            self.hub.detach(self, self.session.listen, identity=self._identity)
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

    def _send_kept(self) -> None:
        assert self._handshake is not None
        subscriber = self._handshake.subscriber
        kept = []
        for channel, data in subscriber.get_persisted_messages():
            subscriber.channel_connected(channel, self._handshake.request)
            kept.append((channel, data))
        if kept:
            self.session.kept(kept)
            self._run(self.session.take())

    def _opened(self) -> None:
        """Let go of what only the opening needed. The Django request (its environ, session, user, query dict:
        about 2.5 KB, bench/) stays only where something can still use it: a v2 client may change its subscriptions
        (authorised with the request), and the message and disconnect hooks receive it."""
        self._handshake = None
        if self.session.protocol.name is None and self._hooks.message is None and self._hooks.disconnect is None:
            self._request = None

    def _on_readable(self) -> None:
        # A parked socket's pong is taken right here, by the loop: no greenlet, no parser (``take_nowait``).
        # Whatever else came is the greenlet's, which is not "busy" for it: only a message from the client
        # (``_drain_socket``) keeps the greenlet until the next quiet periodic turn.
        if self._greenlet is None and not self._ended and self.transport.take_nowait():
            return
        self._readable = True
        self._kick()

    def on_wheel(self, now: float, wall: float) -> None:
        """This socket's periodic turn (``ws4redis.runtime.gevent.idle``): once per interval, spread over it with the
        worker's
        other sockets. A parked socket with no Redis duties (connection quota, presence) is served right here,
        without a greenlet: its session's clock (an expired user session), and its liveness (the transport pings a
        peer silent for ``WS4REDIS_PING_INTERVAL``, without waiting). A greenlet runs the full round only when
        something is due: a pong overdue, a ping that could not be written at once, the session's revocation, and
        always for a socket that has a greenlet or Redis duties (as each turn did before)."""
        if self._ended:
            return
        if self._greenlet is None and self._quota is None and not self._presence.channels and self._online is None:
            self._busy = False
            session = self.session
            session.tick(now, wall=wall)
            if not session.busy and not self.transport.idle_check(now):
                return
        self._due = True
        self._kick()

    def _rounds(self, park: bool) -> None:
        """Serve until nothing is pending; then park if ``park`` (set again by a periodic wake-up after a quiet
        period), else wait for the next event."""
        session = self.session
        while True:
            self._kicked = False
            self._working = True
            if session.busy:  # notices and closes decided elsewhere (the hub, a revocation, a slow consumer)
                self._run(session.take())
            if self._due:
                self._due = False
                park, self._busy = not self._busy, False
                session.tick(time.monotonic(), wall=time.time())
                if session.busy:  # the user's session expired: revoked
                    continue
                if self._quota is not None:
                    self._quota.refresh()
                self._readable = True  # the transport checks its liveness (pings, pong timeout) when it reads
            if self._readable:  # a wake-up by the hub alone costs no receive call
                self._readable = False  # before the drain: a readability reported while it runs is kept
                if self._drain_socket():
                    self._readable = True  # the round's budget ran out with input left
            now = time.monotonic()
            session.tick(now)  # an expired resume hold, a replay after a hub reconnect
            if session.busy:
                self._run(session.take())
            if self._presence.channels:
                self._presence.refresh(get_connection, now)
            if self._online is not None:
                self._online.refresh(get_connection, now)
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
                if park or not self._busy:  # a quiet periodic turn, or woken for nothing the client said
                    # No switch between this and the return: a later _kick spawns anew.
                    self._greenlet = self._waiter = None
                    return
                if self._waiter is None:
                    self._waiter = gevent.event.Event()
                self._waiter.clear()  # no switch since _kicked was read: a kick from here on sets it
                self._waiter.wait()

    def _drain_socket(self) -> bool:
        """Hand the session what the client sent, at most ``MESSAGES_PER_ROUND`` messages; ``True`` when input is
        left (the round's budget, or the transport's frame budget, ran out), so the caller yields and comes back."""
        transport = self.transport
        receive = transport.receive_nowait
        session = self.session
        for _ in range(MESSAGES_PER_ROUND):
            data = receive()  # also answers and sends pings
            if data is None:
                return transport.pending
            self._busy = True
            session.receive(data, text=transport.last_text, allow=transport.allow_request)
            if session.busy:
                self._run(session.take())
        return True

    def _drain_queue(self) -> None:
        session = self.session
        deliveries = session.drain()
        if deliveries or self.transport.backlog:
            wire = session.wire
            self.transport.send_raw(b"".join([wire(d, encode_frame) for d in deliveries]))
        if deliveries:
            metrics.DELIVERED.inc(len(deliveries))

    # -- carrying out the session's actions (ws4redis.core.actions) --------------------------------------------
    def _run(self, todo: list[actions.Action]) -> None:
        """Carry out ``todo`` in order; what an action's outcome makes the session decide runs right after it."""
        session = self.session
        for action in todo:
            kind = type(action)
            if kind is actions.Send:
                send = cast(actions.Send, action)
                self.transport.send(send.data, text=send.text)
            elif kind is actions.Close:
                close = cast(actions.Close, action)
                raise ConnectionClosed(close.code, close.reason)
            else:
                self._carry_out(action)
                if session.busy:
                    self._run(session.take())

    def _carry_out(self, action: actions.Action) -> None:
        session = self.session
        if isinstance(action, actions.Publish):
            pipe = get_connection().pipeline(transaction=False)
            publish_pipeline(pipe, list(action.channels), action.data, session.config.expire, text=action.text)
            pipe.execute()
            metrics.PUBLISHED_BY_CLIENTS.inc(len(action.channels))
        elif isinstance(action, actions.RunMessageHook):
            try:
                hooked = self._hooks.run_message(self._request, self._subscription, action.data)
            except HookFailed:
                session.hook_failed()
            else:
                session.hooked(hooked, action.text)
        elif isinstance(action, (actions.Subscribe, actions.Unsubscribe)):
            self._change_subscription(action.change)
        elif isinstance(action, actions.SendKept):
            values: list[bytes | None] = get_connection().mget(action.channels)  # type: ignore[assignment]
            session.kept([(c, v) for c, v in zip(action.channels, values, strict=True) if v])
        elif isinstance(action, actions.ReadPositions):
            self._read_positions(action.channels)
        elif isinstance(action, actions.Replay):
            self._replay(action)
        elif isinstance(action, actions.Wake):
            if self._hold_timer is not None:
                self._hold_timer.stop()
            self._hold_timer = gevent.get_hub().loop.timer(action.after)
            self._hold_timer.start(self._kick)

    def _read_positions(self, channels: tuple[str, ...] | None) -> None:
        """Record where the history streams stand (``Recovery.start``): at the opening, once Redis confirmed the
        subscriptions (then the session may hold live messages for the client's resume), or for channels subscribed
        at run time, for which the socket takes a ``Recovery`` of its own, so a hub reconnect replays them too."""
        session = self.session
        if channels is not None:
            session.recovery = history.own_recovery(_recovery(session), session.listen)
        try:
            _recovery(session).start(get_connection(), channels, session.first_live)
            ok = True
        except (redis.RedisError, OSError) as exc:  # live delivery still works; a reconnect reports them lost
            logger.warning("ws4redis: could not read history positions for %s (%s)", session.label, exc)
            ok = False
        if channels is None:
            session.positions_read(time.monotonic(), ok=ok)

    def _replay(self, replay: actions.Replay) -> None:
        """Replay from history (a resume, or after a hub reconnect once Redis confirmed the resubscription: what is
        published in between would be lost otherwise); the session sends and answers."""
        session = self.session
        timeout = session.config.subscribe_timeout
        if replay.reason == "reconnect" and not self.hub.confirmed(list(replay.since), timeout):
            session.replayed(replay, [], list(replay.since))
            return
        try:
            messages, lost = _recovery(session).replay(
                get_connection(), replay.since, session.first_live if replay.live else None
            )
        except (redis.RedisError, OSError) as exc:
            logger.warning("ws4redis: history replay for %s failed (%s)", session.label, exc)
            session.replay_failed(replay)
            return
        session.replayed(replay, messages, lost)
        if messages:
            metrics.DELIVERED.inc(len(messages))

    def _change_subscription(self, change: Change) -> None:
        """A v2 ``subscribe``/``unsubscribe`` (``ws4redis.integration.multiplex``): authorised as a connection to that
        facility
        (policy, ``WS4REDIS_ALLOWED_CHANNELS`` and the facility's connect hook), attached or detached, then the
        session answers."""
        from django.core.exceptions import PermissionDenied

        from ws4redis.exceptions import HandshakeRefused
        from ws4redis.integration import multiplex
        from ws4redis.runtime.gevent.hub import HubUnavailable

        session = self.session
        request = self._request
        assert request is not None  # kept for ws4redis.v2 sockets, the only ones that can change subscriptions
        try:
            if change.kind == "subscribe":
                grant = multiplex.authorise_subscribe(
                    request, change.facility, change.audiences,
                    echo=self._subscription.echo, listening=len(session.listen),
                )
                new = [c for c in grant.channels if c not in session.listen]
                if new:
                    self.hub.attach(self, new, timeout=session.config.subscribe_timeout)
                self._remember_disconnect(grant, new)
                session.subscribed(change, grant.audiences, new)
            else:
                gone = set(multiplex.channels_to_drop(request, change.facility, change.audiences)) & set(session.listen)
                if gone:
                    self.hub.detach(self, gone)
                    self._forget_disconnect(change.facility, gone)
                session.unsubscribed(change, gone)
        except (HandshakeRefused, PermissionDenied, HubUnavailable) as refusal:
            session.refused(change, getattr(refusal, "detail", None) or str(refusal) or "permission denied")

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


def _recovery(session: Session) -> history.Recovery | history.NoRecovery:
    """The session's positions as ``ws4redis.broker.history`` made them (the session knows them by a pure protocol)."""
    return cast("history.Recovery | history.NoRecovery", session.recovery)
