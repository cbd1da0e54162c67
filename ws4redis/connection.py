"""The connection loop: one per websocket, running in that websocket's own greenlet.

It waits on a single event, set by any of: the socket became readable, the hub queued a message, a close was
requested, or the idle wake-up interval passed. On each wake-up it drains the socket until empty (uWSGI returns one
message per ``websocket_recv_nb`` call, so one call per wake-up would strand buffered messages) and then the queue
until empty, so no message waits for the next event. Whatever ends the loop, the connection detaches from the hub.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event

from ws4redis import metrics, settings
from ws4redis.auth import Handshake
from ws4redis.exceptions import CloseCode, ConnectionClosed, TooManyConnections
from ws4redis.hooks import HookFailed, hooks_for
from ws4redis.hub import Delivery, Hub, is_text
from ws4redis.limits import TokenBucket
from ws4redis.protocol import WireProtocol, protocol_for
from ws4redis.quota import ConnectionQuota
from ws4redis.redis_store import get_connection, publish_pipeline
from ws4redis.transports import Transport

if TYPE_CHECKING:
    from ws4redis.protocol import Change

__all__ = ["Connection"]

logger = logging.getLogger(__name__)

_OWN_ECHOES = 64  # own publishes remembered for echo suppression; more in flight than this is not plausible


class Connection:
    """One websocket: its queue, its wake-up event and its loop."""

    def __init__(self, transport: Transport, handshake: Handshake, hub: Hub) -> None:
        self.transport = transport
        self.handshake = handshake
        self.hub = hub
        self.protocol: WireProtocol = protocol_for(handshake.subprotocol, heartbeat=settings.get("WS4REDIS_HEARTBEAT"))
        self._listen = handshake.listen
        self._publish = handshake.publish
        self._queue: collections.deque[Delivery] = collections.deque()
        self._queued_bytes = 0
        self._queue_limit = int(settings.get("WS4REDIS_QUEUE_BYTES"))
        self._max_message = int(settings.get("WS4REDIS_MAX_MESSAGE_SIZE"))
        self._wake = gevent.event.Event()
        self._close: ConnectionClosed | None = None
        # Echo suppression by origin: (channel, payload) of this socket's own publishes not yet seen coming back.
        suppress = not handshake.subscription.echo and bool(set(self._listen) & set(self._publish))
        self._own: collections.deque[tuple[str, bytes]] | None = (
            collections.deque(maxlen=_OWN_ECHOES) if suppress else None
        )
        self._attached = False
        self._control_frames: list[tuple[bytes, bool]] = []
        self._hooks = hooks_for(handshake.subscription.facility)  # resolved once per facility; None kinds cost nothing
        self._drop_oldest = settings.get("WS4REDIS_SLOW_CONSUMER") == "drop-oldest"
        rate = settings.get("WS4REDIS_PUBLISH_RATE")
        self._bucket = TokenBucket(float(rate), float(settings.get("WS4REDIS_PUBLISH_BURST"))) if rate else None
        self._expires_at = handshake.session_expiry  # wall-clock time, or None
        self._quota: ConnectionQuota | None = None
        self._next_check = 0.0

    # -- called by the hub (another greenlet): queue and wake, never block ---------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        own = self._own
        if own and (delivery.channel, delivery.data) in own:
            own.remove((delivery.channel, delivery.data))
            return
        if self._close is not None:
            return
        size = len(delivery.data)
        if self._queued_bytes + size > self._queue_limit and self._drop_oldest:
            self._drop_to_fit(size)
        if self._queued_bytes + size > self._queue_limit:
            metrics.DROPPED.labels("slow_consumer").inc(len(self._queue) + 1)
            logger.warning(
                "ws4redis: closing slow consumer %s: %d bytes queued, limit %d (WS4REDIS_QUEUE_BYTES)",
                self.handshake.label, self._queued_bytes + size, self._queue_limit,
            )
            self.request_close(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        self._queue.append(delivery)
        self._queued_bytes += size
        self._wake.set()

    def _drop_to_fit(self, size: int) -> None:
        """The "drop-oldest" policy: make room by discarding the oldest queued messages, counted and logged."""
        dropped = 0
        while self._queue and self._queued_bytes + size > self._queue_limit:
            self._queued_bytes -= len(self._queue.popleft().data)
            dropped += 1
        if dropped:
            metrics.DROPPED.labels("slow_consumer_oldest").inc(dropped)
            logger.warning("ws4redis: dropped %d oldest message(s) for slow consumer %s", dropped, self.handshake.label)
            gap = self.protocol.control("gap", dropped=dropped)
            if gap is not None:
                self._control_frames.append(gap)

    def hub_reconnected(self) -> None:
        """Messages published while the hub was disconnected are gone; a v2 client is told (see protocol)."""
        frame = self.protocol.control("reconnected")
        if frame is not None:
            self._control_frames.append(frame)
            self._wake.set()

    def revoke(self) -> None:
        """Logged out, session deleted or user deactivated: tell a v2 client, then close with 4003."""
        frame = self.protocol.control("revoked")
        if frame is not None:
            self._control_frames.append(frame)
        self.request_close(CloseCode.REVOKED, "revoked")

    def request_close(self, code: int, reason: str) -> None:
        """Close this websocket from any greenlet: the loop sends what it can and exits."""
        if self._close is None:
            self._close = ConnectionClosed(code, reason)
            self._queue.clear()
            self._queued_bytes = 0
        self._wake.set()

    # -- the connection's own greenlet -------------------------------------------------------------------------
    def open(self) -> None:
        """Subscribe through the hub (confirmed by Redis) before the upgrade; raises ``HubUnavailable``."""
        limit = settings.get("WS4REDIS_MAX_CONNECTIONS_PER_USER")
        user = [name for kind, name in self.handshake.identity if kind == "user"]
        if limit and user:
            quota = ConnectionQuota(user[0], int(limit))
            if not quota.acquire():
                raise TooManyConnections(f"at most {limit} websockets per user (WS4REDIS_MAX_CONNECTIONS_PER_USER)")
            self._quota = quota
        timeout = float(settings.get("WS4REDIS_SUBSCRIBE_TIMEOUT"))
        try:
            self.hub.attach(self, self._listen, timeout=timeout, identity=self.handshake.identity)
        except BaseException:
            self._release_quota()
            raise
        self._attached = True

    def run(self) -> None:
        """Upgrade, send the kept messages, then serve until the peer leaves or a close is requested."""
        code: int = CloseCode.GOING_AWAY
        reason = ""
        watcher: Any = None
        try:
            self.transport.accept(self.handshake.subprotocol)
            metrics.CONNECTIONS.inc()
            facility = self.handshake.subscription.facility
            logger.info("ws4redis: websocket open for %s on %s", self.handshake.label, facility)
            watcher = gevent.get_hub().loop.io(self.transport.fileno(), 1)
            watcher.start(self._wake.set)
            self._send_welcome()
            self._send_kept()
            self._loop()
        except ConnectionClosed as closed:
            code, reason = closed.code, closed.reason
        except Exception:
            code, reason = CloseCode.INTERNAL_ERROR, "internal error"
            logger.exception("ws4redis: websocket of %s failed", self.handshake.label)
        finally:
            if watcher is not None:
                watcher.stop()
                metrics.CONNECTIONS.dec()
            self.release()
            self.transport.close(code, reason)
            metrics.CLOSED.labels(str(int(code))).inc()
            logger.info("ws4redis: websocket closed for %s (%d %s)", self.handshake.label, code, reason)
            self._hooks.run_disconnect(self.handshake.request, self.handshake.subscription)

    def release(self) -> None:
        """Detach from the hub (idempotent): whatever ended the connection, its channels are released."""
        if self._attached:
            self._attached = False
            self.hub.detach(self, self._listen, identity=self.handshake.identity)
        self._release_quota()

    def _release_quota(self) -> None:
        quota, self._quota = self._quota, None
        if quota is not None:
            try:
                quota.release()
            except Exception:  # Redis down: the entry expires by itself
                logger.warning("ws4redis: could not release a connection quota entry; it will expire")

    def _send_welcome(self) -> None:
        """Tell a v2 client what it got (the policy may have narrowed what it asked for); legacy gets nothing."""
        sub = self.handshake.subscription
        welcome = self.protocol.control(
            "welcome", facility=sub.facility, subscribe=sorted(sub.subscribe), publish=sorted(sub.publish)
        )
        if welcome is not None:
            self._send(*welcome)

    def _send_kept(self) -> None:
        subscriber = self.handshake.subscriber
        for channel, data in subscriber.get_persisted_messages():
            subscriber.channel_connected(channel, self.handshake.request)
            self._send(*self.protocol.frame(Delivery(channel, data, is_text(data))))

    def _loop(self) -> None:
        interval = float(settings.get("WS4REDIS_WAKE_INTERVAL"))
        wake = self._wake
        while True:
            wake.wait(interval)
            wake.clear()
            if self._close is not None:
                self._flush_control()
                raise self._close
            now = time.monotonic()
            if now >= self._next_check:  # one float comparison per wake-up, busy or idle
                self._next_check = now + interval
                if self._idle_checks():
                    continue
            self._drain_socket()
            self._flush_control()
            self._drain_queue()

    def _idle_checks(self) -> bool:
        """Periodic duties, cheap enough for every wake-up: session expiry and the quota's refresh."""
        if self._expires_at is not None and time.time() >= self._expires_at:
            logger.info("ws4redis: session of %s expired; closing its websocket", self.handshake.label)
            self.revoke()
            return True
        if self._quota is not None:
            self._quota.refresh()
        return False

    def _drain_socket(self) -> None:
        receive = self.transport.receive_nowait
        while True:
            data = receive()  # also lets uWSGI answer and send pings
            if data is None:
                return
            if len(data) > self._max_message:
                metrics.DROPPED.labels("message_too_big").inc()
                logger.warning(
                    "ws4redis: %s sent %d bytes, limit %d", self.handshake.label, len(data), self._max_message
                )
                raise ConnectionClosed(CloseCode.MESSAGE_TOO_BIG, "message too big")
            incoming = self.protocol.incoming(data)
            if incoming.reply is not None:
                self._send(*incoming.reply)
            if incoming.publish is not None:
                hooked = self._message_hook(incoming.publish)
                if hooked is not None:
                    self._client_publish(hooked)
            if incoming.change is not None:
                self._change_subscription(incoming.change)

    def _message_hook(self, data: bytes) -> bytes | None:
        """The facility's message hook (``ws4redis.hooks``): new bytes, or ``None`` to drop; a failure closes 1011."""
        if self._hooks.message is None:
            return data
        try:
            return self._hooks.run_message(self.handshake.request, self.handshake.subscription, data)
        except HookFailed:
            frame = self.protocol.control("error", reason="internal error")
            if frame is not None:
                self._send(*frame)
            raise ConnectionClosed(CloseCode.INTERNAL_ERROR, "hook failed") from None

    def _change_subscription(self, change: Change) -> None:
        """A v2 ``subscribe``/``unsubscribe`` (``ws4redis.multiplex``): authorised as at connect, then answered."""
        from django.core.exceptions import PermissionDenied

        from ws4redis import multiplex
        from ws4redis.exceptions import HandshakeRefused
        from ws4redis.hub import HubUnavailable

        request = self.handshake.request
        new: list[str] = []  # channels to send kept messages of, once the client has its answer
        try:
            if change.kind == "subscribe":
                granted, channels = multiplex.authorise_subscribe(
                    request, change.facility, change.audiences,
                    echo=self.handshake.subscription.echo, listening=len(self._listen),
                )
                new = [c for c in channels if c not in self._listen]
                if new:
                    self.hub.attach(self, new, timeout=float(settings.get("WS4REDIS_SUBSCRIBE_TIMEOUT")))
                    self._listen.extend(new)
                answer = self.protocol.control("subscribed", facility=change.facility, audiences=sorted(granted))
            else:
                gone = set(multiplex.channels_to_drop(request, change.facility, change.audiences)) & set(self._listen)
                if gone:
                    self._listen = [c for c in self._listen if c not in gone]
                    self.hub.detach(self, gone)
                    # Already queued messages of those channels must not arrive after the answer either.
                    kept = [d for d in self._queue if d.channel not in gone]
                    self._queue.clear()
                    self._queue.extend(kept)
                    self._queued_bytes = sum(len(d.data) for d in kept)
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

    def _send_kept_of(self, channels: list[str]) -> None:
        """The kept last message of newly subscribed channels, as a new socket gets them (``WS4REDIS_EXPIRE``)."""
        if not channels or not settings.get("WS4REDIS_EXPIRE"):
            return
        values: list[bytes | None] = get_connection().mget(channels)  # type: ignore[assignment]
        for channel, data in zip(channels, values, strict=True):
            if data:
                self._send(*self.protocol.frame(Delivery(channel, data, is_text(data))))

    def _client_publish(self, data: bytes) -> None:
        if self._bucket is not None and not self._bucket.take(time.monotonic()):
            metrics.DROPPED.labels("rate_limited").inc()
            logger.warning("ws4redis: %s published faster than WS4REDIS_PUBLISH_RATE; closing", self.handshake.label)
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
        if self._own is not None:
            for channel in self._publish:
                if channel in self._listen:
                    self._own.append((channel, data))
        pipe = get_connection().pipeline(transaction=False)
        publish_pipeline(pipe, list(self._publish), data, int(settings.get("WS4REDIS_EXPIRE") or 0))
        pipe.execute()
        metrics.PUBLISHED_BY_CLIENTS.inc()

    def _drain_queue(self) -> None:
        queue = self._queue
        frame = self.protocol.frame
        sent = 0
        while queue:
            delivery = queue.popleft()
            self._queued_bytes -= len(delivery.data)
            self._send(*frame(delivery))
            sent += 1
            if self._close is not None:
                break
        if sent:
            metrics.DELIVERED.inc(sent)

    def _flush_control(self) -> None:
        while self._control_frames:
            self._send(*self._control_frames.pop(0))

    def _send(self, data: bytes, text: bool) -> None:
        self.transport.send(data, text=text)
