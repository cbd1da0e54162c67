"""The hub: one Redis pub/sub connection per worker process, shared by every websocket of that process.

The original opened one pub/sub connection per websocket, so Redis ``maxclients`` capped the site. Here a worker
subscribes once per channel (reference-counted: SUBSCRIBE on first interest, UNSUBSCRIBE on last), reads in its
own greenlet, and hands each message to the local listeners of its channel (``Listener.deliver``), which only
queue it: the write happens once the hub has read everything Redis sent so far
(``ws4redis.runtime.gevent.connection``), so a
burst goes out in one write per socket and a slow client never stalls the hub.

On a Redis failure the hub reconnects with jittered backoff (itself: redis-py never reconnects its link), resubscribes
every channel and, once Redis confirmed them all, tells its listeners, so they can recover what they missed; what is
published from then on reaches them. A new websocket waits for Redis to confirm its subscriptions before it is
upgraded: once a client sees ``101``, messages published afterwards reach it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.event
import gevent.lock
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ws4redis import metrics, settings
from ws4redis.broker import presence_signals, reach
from ws4redis.broker.cluster import pubsub_for
from ws4redis.broker.redis_store import new_client
from ws4redis.broker.revocation import control_channel
from ws4redis.core import wire
from ws4redis.core.delivery import Delivery
from ws4redis.runtime.dispatch import HubDispatch, reconnect_delay
from ws4redis.runtime.subscriptions import HubUnavailable, Listener, Subscriptions

__all__ = ["Delivery", "Hub", "HubUnavailable", "Listener", "get_hub", "is_text"]

logger = logging.getLogger("ws4redis.hub")  # its name before the move: logging configurations keep it

_PING_INTERVAL = 10.0  # seconds between keep-alive PINGs on the pub/sub link; silence for 3x this means a dead link
_SUBSCRIBE_CHUNK = 500  # channels per SUBSCRIBE command when resubscribing after a reconnect


is_text = wire.is_text  # where the connection loop and views have always imported it from


class Hub:
    """The process's single pub/sub reader and its channel -> listeners table."""

    def __init__(self) -> None:
        # The channel table, shared with the asyncio hub (ws4redis.runtime.subscriptions); its dicts under the names
        # the rest of this class and the dispatch read.
        self._subs = Subscriptions(gevent.event.Event)
        self._listeners: dict[str, set[Listener]] = self._subs.listeners
        self._by_identity: dict[tuple[str, str], Any] = self._subs.by_identity  # a listener or a set (Subscriptions)
        self._pubsub: Any = None
        self._client: redis.Redis | None = None
        self._write_lock = gevent.lock.Semaphore()
        self._greenlets: list[gevent.Greenlet] = []
        self._connected = gevent.event.Event()
        self._stopping = False
        self._heartbeat = settings.get("WS4REDIS_HEARTBEAT")
        self.control_channel = control_channel()
        self.reconnects = 0
        self._last_seen = time.monotonic()
        self._rules = HubDispatch(
            logger, listeners=self._listeners, by_identity=self._by_identity, control_channel=self.control_channel,
            heartbeat=self._heartbeat, delivery=Delivery, answer_probe=reach.answer,
        )

    # -- what connections call ---------------------------------------------------------------------------------
    def attach(
        self, listener: Listener, channels: Iterable[str], *, timeout: float, identity: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Listen on ``channels``; returns once Redis confirmed each subscription, else raises ``HubUnavailable``.

        ``identity`` (``("user", name)``, ``("session", key)``) is what a revocation of this listener names.
        """
        self._ensure_running()
        channels, identity = list(dict.fromkeys(channels)), list(identity)
        new = self._subs.add(listener, channels, identity)
        if new:
            self._subscribe(new)
        for ready in self._subs.waits(channels):
            if not ready.wait(timeout):
                self.detach(listener, channels, identity=identity)
                # The channel name is not in the message: a session channel's name holds the session key.
                raise HubUnavailable(f"Redis did not confirm a subscription within {timeout}s")

    def detach(self, listener: Listener, channels: Iterable[str], *, identity: Iterable[tuple[str, str]] = ()) -> None:
        """Stop listening on ``channels``; a channel nobody listens to any more is unsubscribed."""
        gone = self._subs.remove(listener, channels, identity)
        if gone:
            self._command("UNSUBSCRIBE", gone)

    def confirmed(self, channels: Iterable[str], timeout: float) -> bool:
        """Wait until Redis confirmed the subscription of each of ``channels`` (after a reconnect, say).

        A replay from history must start after the subscription is live, or what is published in between is lost.
        """
        return all(ready.wait(timeout) for ready in self._subs.waits(channels))

    @property
    def channels(self) -> list[str]:
        """Channels this process is subscribed to (for status pages and tests)."""
        return list(self._listeners)

    def table_sizes(self) -> dict[str, int]:
        """Entries in each table a client can add to (for status pages, and tests proving they are bounded: every
        one returns to its size before a client subscribed to and unsubscribed from any number of channels)."""
        sizes = self._subs.sizes()
        for name in ("channels", "pending_unsubscribe_channels"):  # redis-py's own records of the subscriptions
            table = getattr(self._pubsub, name, None)
            if isinstance(table, (dict, set)):
                sizes[f"pubsub_{name}"] = len(table)
        return sizes

    def stop(self) -> None:
        """Stop reading and close the pub/sub connection (tests, and a worker that is going away)."""
        self._stopping = True
        gevent.killall(self._greenlets, block=False)
        self._close_pubsub()

    # -- the Redis side ----------------------------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if not self._greenlets:
            self._greenlets = [gevent.spawn(self._run), gevent.spawn(self._keepalive), *presence_signals.sweeper()]

    def _subscribe(self, channels: list[str]) -> None:
        if not channels:
            return
        self._subs.sent(channels)
        if not self._command("SUBSCRIBE", channels):
            for channel in channels:  # not sent: the reconnect will subscribe every channel afresh
                self._subs.settle(channel)

    def _command(self, name: str, channels: list[str]) -> bool:
        """Send a (UN)SUBSCRIBE on the pub/sub link; ``False`` when there is no link (the reconnect covers it)."""
        pubsub = self._pubsub
        if pubsub is None or not self._connected.is_set():
            return False
        try:
            with self._write_lock:
                if name == "SUBSCRIBE":
                    pubsub.subscribe(*channels)
                else:
                    pubsub.unsubscribe(*channels)
        except (redis.RedisError, OSError) as exc:
            logger.warning("ws4redis hub: %s failed (%s); the reconnect will resync", name, exc)
            return False
        return True

    def _connect(self) -> None:
        # Kept on self: a redis.Redis that is garbage collected closes its pool, and with it the pub/sub socket.
        self._client = client = new_client(
            # Reconnects are the hub's job: it must know about them. Retries alone are not enough to say so: on any
            # error its Retry handles, redis-py's PubSub reconnects the link and resubscribes every channel before
            # it raises (even with 0 retries). The hub then closed that link, but for a moment Redis showed the
            # hub's name on a new link holding every channel, read by nobody: a message published then was lost
            # although the hub looked resubscribed. So no error is handled by redis-py at all.
            retry=Retry(NoBackoff(), 0, supported_errors=()),
            retry_on_error=[],
            socket_keepalive=True,
            # Named, so an operator's CLIENT LIST shows which worker holds which pub/sub link.
            client_name=f"ws4redis-hub:{socket.gethostname()}:{os.getpid()}",
        )
        pubsub = pubsub_for(client, classic=[self.control_channel])  # Redis Cluster: sharded, one link per shard
        if isinstance(pubsub, redis.client.PubSub):
            # A read on a link that something disconnected would connect it again and resubscribe behind the
            # hub's back (its listeners never told): refused, so the reader fails and _run reconnects properly.
            pubsub.on_connect = self._refuse_reconnect  # type: ignore[method-assign]
        # Subscribed at all times (to the control channel at least), so redis-py never reads from the socket
        # outside the reader greenlet to check health.
        channels = self._subs.link_up(self.control_channel)
        with self._write_lock:
            for start in range(0, len(channels), _SUBSCRIBE_CHUNK):
                pubsub.subscribe(*channels[start : start + _SUBSCRIBE_CHUNK])
        self._pubsub = pubsub
        self._last_seen = time.monotonic()
        self._connected.set()
        # Listeners that came or went while the link was being set up.
        subscribed = set(channels)
        self._subscribe([c for c in self._listeners if c not in subscribed])
        gone = [c for c in channels[1:] if c not in self._listeners]
        if gone:
            self._command("UNSUBSCRIBE", gone)

    def _refuse_reconnect(self, connection: Any) -> None:
        """redis-py's resubscribe-on-connect hook of the hub's link (called only when a link connects again)."""
        raise redis.ConnectionError("the hub's pub/sub link is reconnected by the hub only")

    def _close_pubsub(self) -> None:
        self._connected.clear()
        pubsub, self._pubsub = self._pubsub, None
        client, self._client = self._client, None
        self._subs.link_lost(owe_notice=False)
        for closable in (pubsub, client):
            if closable is not None:
                try:
                    closable.close()
                except (redis.RedisError, OSError):
                    pass

    def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                self._connect()
                if failures:
                    self.reconnects += 1
                    metrics.HUB_RECONNECTS.inc()
                failures = 0
                self._read()
            except Exception as exc:  # the hub must outlive any failure, or every socket of the worker goes deaf
                if self._stopping:
                    break
                failures += 1
                self._subs.link_lost(owe_notice=True)  # listeners are owed a notice once the next link is confirmed
                delay = reconnect_delay(failures)
                if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
                    logger.warning("ws4redis hub: Redis pub/sub link lost (%s); retrying in %.2fs", exc, delay)
                else:
                    logger.exception("ws4redis hub: reader failed; reconnecting in %.2fs", delay)
                self._close_pubsub()
                gevent.sleep(delay)

    def _read(self) -> None:
        pubsub = self._pubsub
        while True:
            # A blocking read: no poll and no timeout juggling per message. A silently dead link is detected by
            # _keepalive, which shuts the socket down so this read fails.
            response = self._receive(pubsub)
            self._last_seen = time.monotonic()
            if response is None:
                continue
            kind = response[0]
            if kind == b"message":
                # Never raises: the heartbeat is skipped, a bad record counted (ws4redis.runtime.dispatch).
                self._rules.message(response[1].decode(errors="replace"), bytes(response[2]))
            else:
                message = pubsub.handle_message(response, ignore_subscribe_messages=False)
                if message is not None and message["type"] == "subscribe":
                    self._confirm(message["channel"].decode())

    def _receive(self, pubsub: Any) -> Any:
        """The next reply on the pub/sub link, waiting as long as it takes (``ws4redis.servers.threaded`` reads
        elsewhere)."""
        return pubsub.parse_response(block=True)

    def _confirm(self, channel: str) -> None:
        if self._subs.confirm(channel):
            self._resubscribed()

    def _resubscribed(self) -> None:
        """Redis confirmed every channel on the new link: only now are the listeners told (a v2 client gets
        ``reconnected``), so what is published once a client knows reaches it, however slowly the SUBSCRIBE went."""
        logger.warning("ws4redis hub: reconnected to Redis, resubscribed %d channels", len(self._listeners))
        self._notify_reconnected()

    def _dispatch(self, channel: str, data: bytes) -> None:
        """One message from the link, heartbeat aside (``ws4redis.runtime.dispatch``, shared with the asyncio hub)."""
        self._rules.dispatch(channel, data)

    def _notify_reconnected(self) -> None:
        for listener in self._rules.each_listener():
            listener.hub_reconnected()

    def _keepalive(self) -> None:
        """PING the pub/sub link now and then; no reply for 3 intervals means a dead link, which is then cut."""
        while not self._stopping:
            gevent.sleep(_PING_INTERVAL)
            pubsub = self._pubsub
            if pubsub is None or not self._connected.is_set():
                continue
            silent = time.monotonic() - self._last_seen
            if silent > _PING_INTERVAL * 3:
                logger.warning("ws4redis hub: no reply from Redis for %.0fs; cutting the link", silent)
                sock = getattr(pubsub.connection, "_sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)  # the blocked read fails and _run reconnects
                    except OSError:
                        pass
                continue
            try:
                with self._write_lock:
                    pubsub.ping()
            except (redis.RedisError, OSError) as exc:
                logger.warning("ws4redis hub: keep-alive PING failed (%s)", exc)


_hub: tuple[int, Hub] | None = None
#: Set by ``ws4redis.servers.threaded`` in a process served by Django's threaded server: each thread then gets a link to
#: the hub of that process, which runs in a thread of its own.
provider: Callable[[], Hub] | None = None


def get_hub() -> Hub:
    """This process's hub, created on first use after the fork (never inherited from a parent process)."""
    global _hub
    if provider is not None:
        return provider()
    if _hub is None or _hub[0] != os.getpid():
        _hub = (os.getpid(), Hub())
    return _hub[1]


def reset_hub() -> None:
    """Stop and forget this process's hub (tests that restart Redis, and worker shutdown)."""
    global _hub
    if _hub is not None and _hub[0] == os.getpid():
        _hub[1].stop()
    _hub = None
