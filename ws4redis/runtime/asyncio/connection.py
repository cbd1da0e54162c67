"""One websocket on asyncio (``AsyncioConnection``): one task per socket runs the sans-I/O ``Session``
(``ws4redis.core``) over ASGI messages.

The session decides everything (kept messages, heartbeats, client publishing and its rate, v2 requests, resume and
replay, slow consumers, revocation, drain, expiry); this module only does I/O, as
``ws4redis.runtime.gevent.connection`` does on gevent:

- the asyncio hub (``ws4redis.runtime.asyncio.hub``) calls ``deliver`` and the control callbacks on the event loop;
  they never block, they queue in the session and wake the socket's task;
- a reader task turns ASGI ``websocket.receive`` messages into an inbox bounded by ``MESSAGES_PER_ROUND`` (a client
  that floods waits for the server's own flow control, it never grows a queue here);
- the socket's task waits for a wake-up, hands the session at most ``MESSAGES_PER_ROUND`` client messages, carries out
  the actions the session returns, in order, then writes the queue; a periodic wake-up (``WS4REDIS_WAKE_INTERVAL``,
  sooner for presence) ticks the session and refreshes presence and the connection quota.

Redis (publishes, kept messages, history positions and replays, presence, quota) is awaited on the loop's
redis.asyncio client (``ws4redis.runtime.asyncio.redis_client``): the gevent side's own commands and reply parsing
(``ws4redis.broker.redis_batch``), the same topologies (Sentinel, Cluster), and no worker thread per call. The run-time
subscribe policy runs in Django's sync thread, as the handshake does; the message and disconnect hooks, the presence
signals' receivers and a custom subscriber's kept messages run in worker threads, so a slow one holds only its own
socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from ws4redis import metrics, settings
from ws4redis.broker import history
from ws4redis.configuration import current
from ws4redis.core import FIRST, WAKE, CloseCode, Delivery, Session, State, actions
from ws4redis.core.config import MESSAGES_PER_ROUND
from ws4redis.core.limits import TokenBucket
from ws4redis.core.protocol import protocol_for
from ws4redis.runtime.asyncio import redis_client as aioredis
from ws4redis.runtime.asyncio.frames import Receive, Send, asgi_frame, asgi_key, asgi_send, send_close
from ws4redis.runtime.asyncio.kept import kept_messages
from ws4redis.runtime.asyncio.threads import in_django, in_thread
from ws4redis.runtime.asyncio.writer import Wake, finish_send, writer_for
from ws4redis.runtime.subscriptions import HubUnavailable

__all__ = ["AsyncioConnection"]

# the driver's name before the split: logging configurations keep it
logger = logging.getLogger("ws4redis.runtime.asyncio_driver")

_SEND_TIMEOUT = 30.0  # seconds a single send may wait for a client that stopped reading, as on the gevent transport


class _Ended(Exception):
    """The websocket is over: ``code`` is how it ended (sent by us, or the client's)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class AsyncioConnection:
    """One websocket on asyncio: the hub's listener and the owner of its session."""

    __slots__ = (
        "_abort", "_allowance", "_asgi_key", "_attached", "_deferred", "_due", "_grants", "_handoff", "_handshake",
        "_identity", "_inbox", "_loop", "_online", "_presence", "_quota", "_receive", "_request", "_room", "_send",
        "_send_since", "_sending", "_subscription", "_task", "_timer", "_wake", "_wake_at", "_working", "_writer",
        "hub", "session",
    )

    def __init__(self, handshake: Any, receive: Receive, send: Send, hub: Any) -> None:
        config = current()
        # The handshake until the socket is open; after it only what can still be used: the request is kept for a
        # v2 client (its run-time subscriptions are authorised with it) and for the message and disconnect hooks.
        self._handshake: Any = handshake
        self._request: Any = handshake.request
        self._subscription: Any = handshake.subscription
        self._receive = receive
        self._send = send
        self.hub = hub
        self._loop = asyncio.get_running_loop()
        hooks = _hooks(handshake.subscription)
        self.session = Session(
            config, protocol_for(handshake.subprotocol, heartbeat=config.heartbeat, prefix=config.prefix),
            listen=list(handshake.listen), publish=list(handshake.publish),
            recovery=history.recovery_for(handshake.listen), echo=handshake.subscription.echo,
            label=handshake.label, expires_at=handshake.session_expiry, message_hook=hooks.message is not None,
        )
        self._identity = handshake.identity
        self._asgi_key = asgi_key(self.session.protocol.wire_key)
        self._wake = Wake()
        # False only while the task is parked waiting for a wake-up: then Writer writes the queue, not the task.
        self._working = True
        self._writer = writer_for(self._loop)
        # What Writer left to the task: a send the server suspended (with the frames after it), or how one failed.
        self._handoff: tuple[Iterator[Any], Any, list[Delivery]] | BaseException | None = None
        self._inbox: list[MutableMapping[str, Any]] = []  # a list: at most MESSAGES_PER_ROUND; an empty deque is 760 B
        self._room: asyncio.Event | None = None  # made when the inbox is full: the reader waits on it
        self._attached = False
        # Frames the session decided before the accept (a drain or a revocation that came in while the socket
        # opened): ASGI sends nothing before the accept, so they go out right after it, in order. None once accepted.
        self._deferred: list[actions.Action] | None = []
        self._quota: Any = None
        self._allowance: TokenBucket | None = None
        self._wake_at: float | None = None  # a Wake action's deadline (monotonic)
        self._task: asyncio.Task[Any] | None = None  # the socket's task, once it serves
        self._sending: asyncio.TimerHandle | None = None  # the send-timeout check, armed while sends go on
        self._send_since: float | None = None  # loop time the current send began; None: not in a send
        self._abort: _Ended | None = None  # why the socket's task was cancelled by this connection itself
        self._due = 0.0  # the next periodic wake-up (monotonic)
        self._timer: asyncio.TimerHandle | None = None  # the wake-up timer of a parked task
        self._grants: dict[str, tuple[Any, set[str]]] | None = None  # run-time facilities with a disconnect hook
        from ws4redis.broker.presence import tracker_for
        from ws4redis.broker.presence_dispatch import send_now
        from ws4redis.broker.presence_signals import online_tracker

        user, key = dict(self._identity).get("user"), dict(self._identity).get("session")
        self._presence = tracker_for(self.session.listen, user=user, session_key=key)
        # Its signals are sent from worker threads, where no gevent loop would ever serve the dispatcher's queue.
        self._online = online_tracker(self.session.listen, user=user, session_key=key, send=send_now)

    # -- the hub's callbacks (on the loop, from the hub's reader): queue and wake, never block ---------------------
    def deliver(self, delivery: Delivery) -> None:
        result = self.session.deliver(delivery)
        if result == FIRST:
            if self._working or self._writer.off:
                self._wake.set()
            else:  # the task is parked: the queue is written without waking it (Writer)
                self._writer.add(self)
        elif result == WAKE:
            self._wake.set()
            if self._send_since is not None:  # blocked on a client that stopped reading: it is closed already
                self._cancel(_Ended(CloseCode.SLOW_CONSUMER, "slow consumer"))

    def hub_reconnected(self) -> None:
        if self.session.hub_reconnected():
            self._wake.set()

    def revoke(self) -> None:
        if self.session.revoke():
            self._wake.set()

    def shutdown(self, reconnect_in_ms: int) -> None:
        if self.session.shutdown(reconnect_in_ms):
            self._wake.set()

    def write_nowait(self) -> int:
        """Write the queue from ``Writer``, outside the socket's task; returns how many messages went out. Left to
        the task, which is woken: a queue the session must act on or filter first (``Session.writable_nowait``:
        actions, a resume hold, history), the rest of a send the server suspended, a send that failed."""
        session = self.session
        if self._working or self._handoff is not None or self._abort is not None or not session.queue:
            return 0
        if not session.writable_nowait():
            self._wake.set()
            return 0
        batch = session.drain()
        send, key, writer = self._send, self._asgi_key, self._writer
        for done, delivery in enumerate(batch):
            try:
                step = send(asgi_send(delivery, session, key)).__await__()
                waiting = next(step)
            except StopIteration:
                writer.sent += 1
                continue  # sent without waiting: the usual case
            except Exception as exc:  # the socket's task ends the socket, as if its own send had failed
                self._handoff = exc
                self._wake.set()
                return done
            self._handoff = (step, waiting, batch[done + 1:])
            writer.suspends()
            self._began_send()
            self._wake.set()
            return done
        return len(batch)

    async def _take_over(self) -> None:
        """Carry on from ``write_nowait``: finish the send it began (under the send timeout) and the frames after
        it, or end the socket as that send's failure says."""
        handoff, self._handoff = self._handoff, None
        if isinstance(handoff, BaseException):
            for message in self._inbox:  # the client's own close says more than the failed send
                if message["type"] == "websocket.disconnect":
                    self._client(message)
            if isinstance(handoff, (OSError, RuntimeError)):
                raise _Ended(1006, "")
            raise handoff
        if handoff is None:
            return
        step, waiting, rest = handoff
        try:
            await finish_send(step, waiting)
        except (OSError, RuntimeError):
            raise _Ended(1006, "") from None
        finally:
            self._send_since = None
        session, key = self.session, self._asgi_key
        for delivery in rest:
            await self._send_message(asgi_send(delivery, session, key))
        metrics.DELIVERED.inc(1 + len(rest))

    # -- before the upgrade --------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Quota, then the hub's subscription confirmed by Redis, then history positions; raises
        ``TooManyConnections`` or ``HubUnavailable`` (the caller refuses with 429 or 503)."""
        from ws4redis.broker.quota import ConnectionQuota
        from ws4redis.exceptions import TooManyConnections

        limit = self.session.config.max_connections_per_user
        user = [name for kind, name in self._identity if kind == "user"]
        if limit and user:
            quota = ConnectionQuota(user[0], int(limit))
            if not await aioredis.run(quota.acquire_batch()):
                raise TooManyConnections(f"at most {limit} websockets per user (WS4REDIS_MAX_CONNECTIONS_PER_USER)")
            self._quota = quota
        try:
            await self.hub.attach(
                self, self.session.listen, timeout=self.session.config.subscribe_timeout, identity=self._identity
            )
        except BaseException:
            await self._release_quota()
            raise
        self._attached = True
        # The history positions are read now, before the upgrade: the welcome carries them, the resume hold starts
        # from them, and nothing published from here on can be missed by a replay (the session hands this action to
        # the driver directly, not through take(), which must wait for the upgrade).
        read = self.session.attached()
        try:
            if read is not None:
                await self._read_positions(read)
            await self._carry_out()
        except BaseException:
            await self._end(CloseCode.INTERNAL_ERROR, "not opened")
            raise

    # -- after the upgrade ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Accept, welcome, kept messages, then serve until the socket ends; tears down whatever ends it."""
        handshake = self._handshake
        session = self.session
        code: int = CloseCode.INTERNAL_ERROR
        reason = "internal error"
        reader: asyncio.Task[None] | None = None
        metrics.CONNECTIONS.inc()
        self._task = asyncio.current_task()
        try:
            try:
                await self._send({"type": "websocket.accept", "subprotocol": handshake.subprotocol})
            except (OSError, RuntimeError):  # the client left while its subscription was being confirmed
                raise _Ended(1006, "") from None
            deferred, self._deferred = self._deferred or [], None
            logger.info("ws4redis: websocket open for %s on %s", session.label, handshake.subscription.facility)
            reader = asyncio.create_task(self._read())
            # Open the session before the first await: a revocation or a drain may come in at any await from here
            # on, and must find an open session (its notice then goes out after the welcome). One that came between
            # the hub's confirmation and the accept left the session closing: its close is all there is to send.
            sub = handshake.subscription
            if session.state is State.OPENING:
                session.opened(sub.facility, subscribe=sub.subscribe, publish=sub.publish)
            for action in deferred:
                await self._do(action)  # a Close among them ends the socket here
            await self._join()  # presence is written before the welcome goes out
            kept = await kept_messages(handshake)
            session.kept(kept)
            self._opened()
            handshake = sub = None  # this frame lives as long as the socket: hold nothing only the opening needed
            del kept, deferred
            await self._carry_out()
            await self._serve()
        except _Ended as ended:
            code, reason = ended.code, ended.reason
        except asyncio.CancelledError:
            if self._abort is None:  # the server is going away
                code, reason = CloseCode.GOING_AWAY, ""
                raise
            uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+: the cancellation was ours, and handled
            if uncancel is not None:
                uncancel()
            # No close frame: the client does not read. Returning lets the server drop the connection.
            code, reason = self._abort.code, self._abort.reason
            logger.warning("ws4redis: dropped %s: %s", session.label, reason)
        except Exception:
            logger.exception("ws4redis: websocket of %s failed", session.label)
            await self._close(code, reason)
        finally:
            if reader is not None:
                reader.cancel()
            metrics.CONNECTIONS.dec()
            await self._end(code, reason)

    def _opened(self) -> None:
        """Let go of what only the opening needed (the Django request is most of an idle socket's memory)."""
        self._handshake = None
        hooks = _hooks(self._subscription)
        if self.session.protocol.name is None and hooks.message is None and hooks.disconnect is None:
            self._request = None

    async def _read(self) -> None:
        """Move ASGI messages into the bounded inbox; a disconnect is the last one."""
        while True:
            try:
                message = await self._receive()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server failed to read: the socket is gone, never a silent hang
                logger.warning("ws4redis: reading the websocket of %s failed: %r", self.session.label, exc)
                message = {"type": "websocket.disconnect", "code": 1006}
            while len(self._inbox) >= MESSAGES_PER_ROUND:  # a flood waits for the server's own flow control
                if self._room is None:
                    self._room = asyncio.Event()
                self._room.clear()
                await self._room.wait()
            self._inbox.append(message)
            self._wake.set()
            if message["type"] == "websocket.disconnect":
                return

    async def _serve(self) -> None:
        session = self.session
        self._due = time.monotonic() + self._interval()
        wake = self._wake
        while True:
            waiter = self._park()
            if waiter is not None:  # inline, not a coroutine of its own: one frame less per parked socket
                try:
                    await waiter
                finally:
                    self._unpark()
            wake.clear()
            if self._handoff is not None:
                await self._take_over()
            now = time.monotonic()
            for _ in range(MESSAGES_PER_ROUND):
                if not self._inbox:
                    break
                self._client(self._inbox.pop(0))
                if self._room is not None:
                    self._room.set()
                await self._carry_out()
            if now >= self._due:
                self._due = now + self._interval()
                session.tick(now, wall=time.time())
                await self._refresh(now)
            else:
                session.tick(now)
            await self._carry_out()
            await self._write_queue()
            if self._inbox:
                self._wake.set()  # input left: the next round, after the loop served the others
                await asyncio.sleep(0)

    def _park(self) -> asyncio.Future[None] | None:
        """Wait for a wake-up (a message, a delivery, a close) or the next timer: the future to await, ``None`` if a
        wake-up is due already. One timer handle, no extra task; while parked, ``Writer`` writes the queue."""
        now = time.monotonic()
        if self._wake_at is not None and now >= self._wake_at:
            self._wake_at = None
        deadline = self._due if self._wake_at is None else min(self._due, self._wake_at)
        waiter = self._wake.waiter()
        if waiter is not None:
            self._timer = self._loop.call_later(max(0.0, deadline - now), self._wake.set)
            self._working = False
        return waiter

    def _unpark(self) -> None:
        self._working = True
        self._wake._waiter = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if self._wake_at is not None and time.monotonic() >= self._wake_at:
            self._wake_at = None

    def _interval(self) -> float:
        return min(self.session.config.wake_interval, self._presence.refresh_every)

    def _client(self, message: Mapping[str, Any]) -> None:
        if message["type"] == "websocket.disconnect":
            self.session.closed()
            raise _Ended(int(message.get("code") or CloseCode.NORMAL), "")
        if message.get("text") is not None:
            data, text = str(message["text"]).encode(), True
        else:
            data, text = bytes(message.get("bytes") or b""), False
        self.session.receive(data, text=text, allow=self._allow)

    def _allow(self) -> bool:
        """The socket's allowance for requests that are not publishes (``WS4REDIS_CONTROL_RATE``); pings and pongs
        are the server's business under ASGI."""
        config = self.session.config
        if config.control_rate is None:
            return True
        if self._allowance is None:
            self._allowance = TokenBucket(config.control_rate, config.control_burst)
        return self._allowance.take(time.monotonic())

    async def _write_queue(self) -> None:
        session = self.session
        if session.busy or session.state is not State.OPEN:
            return
        batch = session.drain()
        key = self._asgi_key
        for delivery in batch:
            await self._send_message(asgi_send(delivery, session, key))
        if batch:
            metrics.DELIVERED.inc(len(batch))

    async def _frame(self, data: bytes, text: bool) -> None:
        await self._send_message(asgi_frame(data, text))

    def _began_send(self) -> None:
        self._send_since = self._loop.time()
        if self._sending is None:
            self._sending = self._loop.call_later(_SEND_TIMEOUT, self._check_send)

    async def _send_message(self, message: dict[str, Any]) -> None:
        # One timer per socket, not one per frame (a call_later and its cancel per frame were the largest part of
        # ws4redis' own cost in a fan-out, bench/): it is armed by the first send and re-armed from the start of the
        # send in progress when it fires, so a send that waits _SEND_TIMEOUT on a client that stopped reading (or a
        # session that gives up on it: slow consumer) cancels the socket's task out of the send (``_cancel``).
        self._began_send()
        try:
            await self._send(message)
        except (OSError, RuntimeError):  # the server says the client is gone
            raise _Ended(1006, "") from None
        finally:
            self._send_since = None

    def _check_send(self) -> None:
        """The send-timeout timer: disarm when no send is in progress, give up on one that waited too long, else
        look again when the one in progress would reach the timeout."""
        since = self._send_since
        if since is None:
            self._sending = None
            return
        waited = self._loop.time() - since
        if waited >= _SEND_TIMEOUT:
            self._sending = None
            self._cancel(_Ended(CloseCode.GOING_AWAY, "send timed out"))
        else:
            self._sending = self._loop.call_later(_SEND_TIMEOUT - waited, self._check_send)

    def _cancel(self, why: _Ended) -> None:
        """Stop waiting on a client that does not read: cancel the socket's task out of its send."""
        if self._abort is None and self._task is not None:
            self._abort = why
            self._task.cancel()

    async def _close(self, code: int, reason: str) -> None:
        await send_close(self._send, code, reason, label=self.session.label)

    # -- actions -------------------------------------------------------------------------------------------------
    async def _carry_out(self) -> None:
        """Execute what the session decided, in order, until it decides nothing more."""
        session = self.session
        while True:
            todo = session.take()
            if not todo:
                return
            for action in todo:
                await self._do(action)

    async def _do(self, action: actions.Action) -> None:
        session = self.session
        if self._deferred is not None and isinstance(action, (actions.Send, actions.Close)):
            self._deferred.append(action)
        elif isinstance(action, actions.Send):
            await self._frame(action.data, action.text)
        elif isinstance(action, actions.Close):
            await self._close(action.code, action.reason)
            raise _Ended(action.code, action.reason)
        elif isinstance(action, actions.Publish):
            await aioredis.publish(list(action.channels), action.data, action.text, session.config.expire)
            metrics.PUBLISHED_BY_CLIENTS.inc(len(action.channels))
        elif isinstance(action, actions.RunMessageHook):
            await self._message_hook(action)
        elif isinstance(action, actions.Subscribe):
            await self._subscribe(action)
        elif isinstance(action, actions.Unsubscribe):
            await self._unsubscribe(action)
        elif isinstance(action, actions.SendKept):
            values = await aioredis.kept(list(action.channels))
            session.kept([(c, v) for c, v in zip(action.channels, values, strict=True) if v])
        elif isinstance(action, actions.ReadPositions):
            await self._read_positions(action)
        elif isinstance(action, actions.Replay):
            await self._replay(action)
        elif isinstance(action, actions.Wake):
            deadline = time.monotonic() + action.after
            self._wake_at = deadline if self._wake_at is None else min(self._wake_at, deadline)

    async def _read_positions(self, action: actions.ReadPositions) -> None:
        session = self.session
        if action.channels is not None:
            session.recovery = history.own_recovery(session.recovery, session.listen)  # type: ignore[arg-type]
        recovery: Any = session.recovery
        try:
            # The live queue is read once Redis answered, on the loop, where the hub appends to it.
            batch = recovery.start_batch(action.channels, session.first_live)
            if batch is not None:
                await aioredis.run(batch)
            ok = True
        except Exception as exc:  # Redis: live delivery still works; a reconnect reports the streams lost
            logger.warning("ws4redis: could not read history positions for %s (%s)", session.label, exc)
            ok = False
        if action.channels is None:
            session.positions_read(time.monotonic(), ok=ok)

    async def _replay(self, action: actions.Replay) -> None:
        session = self.session
        if action.reason == "reconnect":
            if not await self.hub.confirmed(list(action.since), session.config.subscribe_timeout):
                session.replayed(action, [], list(action.since))
                return
        recovery: Any = session.recovery
        batch = recovery.replay_batch(action.since, session.first_live if action.live else None)
        try:
            messages, lost = ([], []) if batch is None else await aioredis.run(batch)
        except Exception as exc:
            logger.warning("ws4redis: history replay for %s failed (%s)", session.label, exc)
            session.replay_failed(action)
            return
        session.replayed(action, messages, lost)
        if messages:
            metrics.DELIVERED.inc(len(messages))

    async def _message_hook(self, action: actions.RunMessageHook) -> None:
        """The facility's message hook, in a worker thread of its own: a slow hook holds only this socket. Past
        ``WS4REDIS_HOOK_TIMEOUT`` the socket stops waiting (1011); the thread itself runs on to the hook's end,
        as Python cannot interrupt it."""
        from ws4redis.integration.hooks import HookFailed

        hooks = _hooks(self._subscription)
        timeout = settings.get("WS4REDIS_HOOK_TIMEOUT")
        work = in_thread(hooks.run_message, self._request, self._subscription, action.data)
        try:
            data = await asyncio.wait_for(work, float(timeout) if timeout else None)
        except HookFailed:
            self.session.hook_failed()
            return
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            metrics.DROPPED.labels("message_hook_failed").inc()
            logger.error(
                "ws4redis: message hook of %r took over %ss (WS4REDIS_HOOK_TIMEOUT)",
                self._subscription.facility, timeout,
            )
            self.session.hook_failed()
            return
        self.session.hooked(data, action.text)

    async def _subscribe(self, action: actions.Subscribe) -> None:
        from django.core.exceptions import PermissionDenied

        from ws4redis.exceptions import HandshakeRefused
        from ws4redis.integration import multiplex

        session = self.session
        change = action.change
        try:
            grant = await in_django(
                lambda: multiplex.authorise_subscribe(
                    self._request, change.facility, change.audiences,
                    echo=self._subscription.echo, listening=len(session.listen),
                )
            )
            new = [c for c in grant.channels if c not in session.listen]
            if new:
                await self.hub.attach(self, new, timeout=session.config.subscribe_timeout)
        except (HandshakeRefused, PermissionDenied, HubUnavailable) as refusal:
            session.refused(change, getattr(refusal, "detail", None) or str(refusal) or "permission denied")
            return
        facility = grant.subscription.facility
        if grant.hooks.disconnect is not None and new and facility != self._subscription.facility:
            if self._grants is None:
                self._grants = {}
            self._grants.setdefault(facility, (grant, set()))[1].update(new)
        session.subscribed(change, grant.audiences, new)

    async def _unsubscribe(self, action: actions.Unsubscribe) -> None:
        from ws4redis.exceptions import HandshakeRefused
        from ws4redis.integration import multiplex

        session = self.session
        change = action.change
        try:
            dropped = multiplex.channels_to_drop(self._request, change.facility, change.audiences)
        except HandshakeRefused as refusal:
            session.refused(change, refusal.detail)
            return
        gone = set(dropped) & set(session.listen)
        if gone:
            self.hub.detach(self, gone)  # no await: the hub orders it behind earlier commands
            entry = self._grants.get(change.facility) if self._grants is not None else None
            if entry is not None:
                entry[1].difference_update(gone)
                if not entry[1]:
                    del self._grants[change.facility]  # type: ignore[union-attr]
                    await in_thread(entry[0].hooks.run_disconnect, entry[0].request, entry[0].subscription)
        session.unsubscribed(change, gone)

    # -- presence, quota, teardown ---------------------------------------------------------------------------------
    async def _join(self) -> None:
        batch = self._presence.join_batch()
        if batch is not None:
            await aioredis.run(batch)
        if self._online is not None:
            await _signals(self._online, await aioredis.run(self._online.connect_batch()))

    async def _refresh(self, now: float) -> None:
        quota, presence, online = self._quota, self._presence, self._online
        if quota is None and not presence.channels and online is None:
            return  # most sockets: nothing to write
        try:
            if quota is not None:
                await aioredis.run(quota.refresh_batch())
            batch = presence.refresh_batch(now)  # each only when due
            if batch is not None:
                await aioredis.run(batch)
            due = online.refresh_batch(now) if online is not None else None
            if online is not None and due is not None:
                await _signals(online, await aioredis.run(due))
        except Exception as exc:  # Redis down: the entries expire by themselves; the socket lives on
            logger.warning("ws4redis: presence or quota refresh for %s failed (%s)", self.session.label, exc)

    async def _release_quota(self) -> None:
        quota, self._quota = self._quota, None
        if quota is not None:
            try:
                await aioredis.run(quota.release_batch())
            except Exception:
                logger.warning("ws4redis: could not release a connection quota entry; it will expire")

    async def _end(self, code: int, reason: str) -> None:
        """Tear down once: hub, quota, presence, metrics, disconnect hooks (the socket is closed already)."""
        session = self.session
        if session.state is not State.CLOSED:
            session.closed()
        if self._sending is not None:  # the send-timeout check would keep this connection alive for up to 30 s
            self._sending.cancel()
            self._sending = None
        handoff, self._handoff = self._handoff, None
        if isinstance(handoff, tuple):  # a send Writer began and the task never finished (cancelled: slow consumer)
            close = getattr(handoff[0], "close", None)
            if close is not None:
                close()
        if self._attached:
            self._attached = False
            self.hub.detach(self, session.listen, identity=self._identity)
        await self._release_quota()
        presence, online = self._presence, self._online

        async def leave() -> None:
            batch = presence.leave_batch()
            if batch is not None:
                await aioredis.run(batch)
            gone = online.disconnect_batch() if online is not None else None
            if online is not None and gone is not None:
                await _signals(online, await aioredis.run(gone))

        try:
            await asyncio.shield(leave())
        except Exception as exc:
            logger.warning("ws4redis: presence leave for %s failed (%s)", session.label, exc)
        metrics.CLOSED.labels(str(int(code))).inc()
        logger.info("ws4redis: websocket closed for %s (%d %s)", session.label, code, reason)
        hooks = _hooks(self._subscription)
        if hooks.disconnect is not None:
            await in_thread(hooks.run_disconnect, self._request, self._subscription)
        grants, self._grants = self._grants or {}, None
        for grant, _channels in grants.values():
            await in_thread(grant.hooks.run_disconnect, grant.request, grant.subscription)


def _hooks(subscription: Any) -> Any:
    from ws4redis.integration.hooks import hooks_for

    return hooks_for(subscription.facility)


async def _signals(online: Any, won: list[Any]) -> None:
    """Send the presence signals a write claimed: their receivers are user code, run in a worker thread."""
    if won:
        await in_thread(online.emit, won)
