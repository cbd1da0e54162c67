"""The connection loop: one per websocket, running in that websocket's own greenlet.

It waits on a single event, set by any of: the socket became readable, the hub queued a message, a close was
requested, or the idle wake-up interval passed. On each wake-up it drains the socket until empty (uWSGI returns one
message per ``websocket_recv_nb`` call, so one call per wake-up would strand buffered messages) and then the queue
until empty, so no message waits for the next event. Whatever ends the loop, the connection detaches from the hub.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import gevent
import gevent.event

from ws4redis import metrics, settings
from ws4redis.auth import Handshake
from ws4redis.exceptions import CloseCode, ConnectionClosed
from ws4redis.hub import Delivery, Hub, is_text
from ws4redis.protocol import WireProtocol, protocol_for
from ws4redis.redis_store import get_connection, publish_pipeline
from ws4redis.transports import Transport

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

    # -- called by the hub (another greenlet): queue and wake, never block ---------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        own = self._own
        if own and (delivery.channel, delivery.data) in own:
            own.remove((delivery.channel, delivery.data))
            return
        if self._close is not None:
            return
        size = len(delivery.data)
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
        timeout = float(settings.get("WS4REDIS_SUBSCRIBE_TIMEOUT"))
        self.hub.attach(self, self._listen, timeout=timeout, identity=self.handshake.identity)
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

    def release(self) -> None:
        """Detach from the hub (idempotent): whatever ended the connection, its channels are released."""
        if self._attached:
            self._attached = False
            self.hub.detach(self, self._listen, identity=self.handshake.identity)

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
            self._drain_socket()
            self._flush_control()
            self._drain_queue()

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
                self._client_publish(incoming.publish)

    def _client_publish(self, data: bytes) -> None:
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
