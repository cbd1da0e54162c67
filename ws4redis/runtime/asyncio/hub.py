"""The asyncio hub: one Redis pub/sub connection per event loop, shared by every websocket that loop serves (ASGI).

The same contract as the gevent hub (``ws4redis.runtime.gevent.hub``), in asyncio:

- ``await hub.attach(listener, channels, timeout=..., identity=...)`` returns once Redis confirmed every channel
  (``SUBSCRIBE`` on the first listener of a channel, reference-counted), else raises ``HubUnavailable``: a socket
  is accepted only then, so what is published once a client is in reaches it.
- ``hub.detach(...)`` needs no ``await``: the last listener of a channel queues its ``UNSUBSCRIBE`` behind every
  command queued before it (``ws4redis.runtime.asyncio.links``), so a quick detach and attach of one channel can never
  reach Redis in the wrong order.
- A lost link is reconnected by the hub with jittered backoff (Sentinel: at the master the sentinels name then;
  Cluster: against the current slot table, ``SSUBSCRIBE`` per shard); every channel is resubscribed and, once Redis
  confirmed them all, each listener is told ``hub_reconnected()`` exactly once, so it recovers what it missed from
  history knowing that what is published from then on reaches it.
- What a message from Redis becomes (a delivery, a revocation, a drain, a reach probe's answer, a counted bad
  record) is ``ws4redis.runtime.dispatch``, the gevent hub's own rules.

Listener callbacks are plain methods called in the loop: they must not block (the driver only queues).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Iterable
from typing import Any

import redis

from ws4redis import metrics, settings
from ws4redis.broker import presence_signals, reach
from ws4redis.broker.presence_dispatch import send_now
from ws4redis.broker.revocation import control_channel
from ws4redis.core.delivery import Delivery
from ws4redis.runtime.asyncio.links import Links, open_links
from ws4redis.runtime.dispatch import HubDispatch, reconnect_delay
from ws4redis.runtime.subscriptions import HubUnavailable, Listener, Subscriptions

__all__ = ["AsyncioHub", "get_asyncio_hub", "reset_asyncio_hub"]

logger = logging.getLogger("ws4redis.runtime.asyncio_hub")  # its name before the move: logging configurations keep it

PING_INTERVAL = 10.0  # seconds between keep-alive PINGs on the links; silence for 3x this means a dead link


class AsyncioHub:
    """One event loop's pub/sub links and its channel -> listeners table."""

    def __init__(self) -> None:
        self._subs = Subscriptions(asyncio.Event)  # the channel table, shared with the gevent hub
        self._listeners: dict[str, set[Listener]] = self._subs.listeners
        self._unsubscribing: dict[str, int] = {}  # UNSUBSCRIBEs sent and not yet answered, per channel
        self._links: Links | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._last_seen = 0.0
        self.control_channel = control_channel()
        self.reconnects = 0
        self.name = f"ws4redis-hub:{socket.gethostname()}:{os.getpid()}"  # as the gevent hub: CLIENT LIST shows it
        self._rules = HubDispatch(
            logger, listeners=self._listeners, by_identity=self._subs.by_identity, control_channel=self.control_channel,
            heartbeat=settings.get("WS4REDIS_HEARTBEAT"), delivery=Delivery, answer_probe=self._answer_probe,
        )

    # -- what connections call ---------------------------------------------------------------------------------
    async def attach(
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
        try:
            if not await self.confirmed(channels, timeout):
                # The channel name is not in the message: a session channel's name holds the session key.
                raise HubUnavailable(f"Redis did not confirm a subscription within {timeout}s")
        except BaseException:  # refused, or the client went away while waiting: nothing of it stays behind
            self.detach(listener, channels, identity=identity)
            raise

    def detach(self, listener: Listener, channels: Iterable[str], *, identity: Iterable[tuple[str, str]] = ()) -> None:
        """Stop listening on ``channels``; a channel nobody listens to any more is unsubscribed."""
        gone = self._subs.remove(listener, channels, identity)
        if gone and self._command("UNSUBSCRIBE", gone):
            for channel in gone:
                self._unsubscribing[channel] = self._unsubscribing.get(channel, 0) + 1

    async def confirmed(self, channels: Iterable[str], timeout: float) -> bool:
        """Wait until Redis confirmed the subscription of each of ``channels`` (after a reconnect, say).

        A replay from history must start after the subscription is live, or what is published in between is lost.
        """
        waits = [ready.wait() for ready in self._subs.waits(channels)]
        if not waits:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    @property
    def channels(self) -> list[str]:
        """Channels this loop is subscribed to (for status pages and tests)."""
        return list(self._listeners)

    def table_sizes(self) -> dict[str, int]:
        """Entries in each table a client can add to: every one returns to its size once its sockets are gone."""
        return {**self._subs.sizes(), "unsubscribing": len(self._unsubscribing)}

    def stop(self) -> None:
        """Stop reading; the links close as the hub's tasks end (``aclose`` waits for that)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        """Stop reading and close the pub/sub links (tests, and a server that is going away)."""
        self.stop()
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks, return_exceptions=True)
        _forget(self)

    # -- the Redis side ----------------------------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._stopping:
            raise HubUnavailable("the hub was stopped")
        if not self._tasks:
            self._tasks = [asyncio.ensure_future(self._run()), asyncio.ensure_future(self._keepalive())]
            if settings.get("WS4REDIS_PRESENCE"):
                self._tasks.append(asyncio.ensure_future(self._sweep()))

    def _subscribe(self, channels: list[str]) -> None:
        self._subs.sent(channels)
        if not self._command("SUBSCRIBE", channels):
            for channel in channels:  # not sent: the reconnect will subscribe every channel afresh
                self._subs.settle(channel)

    def _command(self, name: str, channels: list[str]) -> bool:
        """Queue a (UN)SUBSCRIBE on the links; ``False`` when there is no link (the reconnect covers it)."""
        links = self._links
        if links is None:
            return False
        try:
            if name == "SUBSCRIBE":
                links.subscribe(channels)
            else:
                links.unsubscribe(channels)
        except redis.ConnectionError as exc:  # a cluster channel on a shard the links do not know: start again
            logger.warning("ws4redis asyncio hub: %s; reconnecting", exc)
            links.cut()
            return False
        return True

    def _up(self, links: Links) -> None:
        """A new set of links: subscribe everything, in one go (no await here, so nobody comes or goes meanwhile)."""
        channels = self._subs.link_up(self.control_channel)
        self._unsubscribing = {}
        self._links = links
        self._last_seen = time.monotonic()
        links.subscribe(channels)

    async def _down(self, *, failed: bool = False) -> None:
        links, self._links = self._links, None
        self._subs.link_lost(owe_notice=failed)
        if links is not None:
            await links.aclose()

    async def _run(self) -> None:
        failures = 0
        try:
            while not self._stopping:
                try:
                    links = await open_links(
                        client_name=self.name, control_channel=self.control_channel, on_reply=self._on_reply
                    )
                    self._up(links)
                    if failures:
                        self.reconnects += 1
                        metrics.HUB_RECONNECTS.inc()
                    failures = 0
                    await links.serve()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the hub must outlive any failure, or every socket of the loop goes deaf
                    if self._stopping:
                        break
                    failures += 1
                    delay = reconnect_delay(failures)
                    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
                        logger.warning("ws4redis asyncio hub: Redis pub/sub link lost (%s); retrying in %.2fs", exc,
                                       delay)
                    else:
                        logger.exception("ws4redis asyncio hub: reader failed; reconnecting in %.2fs", delay)
                    await self._down(failed=True)  # listeners are owed a notice once the next links are confirmed
                    await asyncio.sleep(delay)
        finally:
            await self._down()

    def _on_reply(self, reply: Any) -> None:
        """One reply read from a link (RESP2: a list). Never raises for what Redis sends."""
        self._last_seen = time.monotonic()
        if not isinstance(reply, list) or len(reply) < 2 or not isinstance(reply[1], bytes):
            return  # PONG, or an unsubscribe from nothing
        kind, channel = reply[0], reply[1].decode(errors="replace")
        if kind in (b"message", b"smessage") and len(reply) > 2:
            self._rules.message(channel, bytes(reply[2]))
        elif kind in (b"subscribe", b"ssubscribe"):
            self._confirm(channel)
        elif kind in (b"unsubscribe", b"sunsubscribe"):
            self._unsubscribed(channel)

    def _confirm(self, channel: str) -> None:
        if self._subs.confirm(channel):
            self._resubscribed()

    def _unsubscribed(self, channel: str) -> None:
        """An UNSUBSCRIBE reply: ours, or Redis dropping a channel (a cluster moved its slot, a master became a
        replica). A channel someone still listens to is then taken up again on the current topology."""
        sent = self._unsubscribing.pop(channel, 0)
        if sent > 1:
            self._unsubscribing[channel] = sent - 1
        if sent == 0 and channel in self._listeners and self._links is not None:
            logger.warning("ws4redis asyncio hub: Redis dropped a subscription; resubscribing everything")
            self._links.cut()

    def _resubscribed(self) -> None:
        """Redis confirmed every channel on the new links: only now are the listeners told, so what is published
        once a client knows reaches it, however slowly the SUBSCRIBE went."""
        logger.warning("ws4redis asyncio hub: reconnected to Redis, resubscribed %d channels", len(self._listeners))
        for listener in self._rules.each_listener():
            self._rules.tell(listener.hub_reconnected)

    def _answer_probe(self, data: bytes, sockets: int) -> None:
        """A reach probe is answered from a thread of the loop's pool (``ws4redis.broker.reach`` is blocking
        redis-py)."""
        loop = asyncio.get_running_loop()
        reach.answer(data, sockets, run=lambda function, *args: loop.run_in_executor(None, function, *args))

    async def _keepalive(self) -> None:
        """PING the links now and then; no reply for 3 intervals means a dead link, which is then cut."""
        while not self._stopping:
            await asyncio.sleep(PING_INTERVAL)
            links = self._links
            if links is None:
                continue
            silent = time.monotonic() - self._last_seen
            if silent > PING_INTERVAL * 3:
                logger.warning("ws4redis asyncio hub: no reply from Redis for %.0fs; cutting the link", silent)
                links.cut()
                continue
            links.ping()

    async def _sweep(self) -> None:
        """Presence: this loop's turns at sweeping dead processes' sockets and due offlines, as a gevent hub takes
        them (``ws4redis.broker.presence_signals``); blocking redis-py and the signal receivers run in a thread."""
        while not self._stopping:
            await asyncio.sleep(random.uniform(0.5, 1.5) * presence_signals.sweep_interval())
            await asyncio.to_thread(presence_signals.sweep_turn, send_now)


_hubs: dict[int, tuple[int, asyncio.AbstractEventLoop, AsyncioHub]] = {}  # id(loop) -> (pid, loop, its hub)


def get_asyncio_hub() -> AsyncioHub:
    """The running loop's hub, created on first use in this process (never inherited across a fork)."""
    loop = asyncio.get_running_loop()
    for key, (_, other, _) in list(_hubs.items()):
        if other.is_closed():
            del _hubs[key]
    entry = _hubs.get(id(loop))
    if entry is None or entry[0] != os.getpid() or entry[1] is not loop:
        entry = _hubs[id(loop)] = (os.getpid(), loop, AsyncioHub())
    return entry[2]


def _forget(hub: AsyncioHub) -> None:
    for key, (_, _, known) in list(_hubs.items()):
        if known is hub:
            del _hubs[key]


async def reset_asyncio_hub() -> None:
    """Close and forget the running loop's hub (tests that restart Redis, and server shutdown)."""
    entry = _hubs.get(id(asyncio.get_running_loop()))
    if entry is not None:
        await entry[2].aclose()

