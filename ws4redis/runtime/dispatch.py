"""What a hub does with one message read from Redis, for both hubs (gevent and asyncio): one copy of the rules, so the
two runtimes cannot drift.

A pub/sub message is, in this order: the heartbeat string (never forwarded), a control message (revoke a user's or a
session's sockets, drain the process), a reach probe (answered with the number of local sockets on that channel,
``ws4redis.broker.reach``), or a record in ws4redis' envelope (``ws4redis.core.wire``) handed to each local listener of
its
channel as one shared ``Delivery``. Anything else is a bad record: counted in ``ws4redis_bad_records`` and logged at
most once a minute, so that a flood of junk fills neither the log nor costs the link every socket of the process
shares.

No I/O and no scheduling here: the hub passes in how it answers a probe (a greenlet, or a thread of the asyncio
loop's executor) and what a ``Delivery`` is; the listener tables are the hub's own dicts, read, never written.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from ws4redis import metrics
from ws4redis.broker import reach
from ws4redis.broker.revocation import instance_name, parse_control
from ws4redis.core import wire

__all__ = ["BAD_LOG_INTERVAL", "HubDispatch", "reconnect_delay", "write_idle"]

BAD_LOG_INTERVAL = 60.0  # seconds: a flood of bad records logs one line per interval, each counted
_DRAIN_DEFAULT = 10.0  # seconds of a drain window that cannot be read
_DRAIN_MIN = 0.5  # seconds: the shortest window (and the shortest reconnect delay) a drain spreads sockets over


class _Fanned(Protocol):
    pending: int


def reconnect_delay(failures: int) -> float:
    """Seconds to wait before reconnecting after ``failures`` failures in a row: jittered exponential backoff, so
    the workers of every host do not reconnect in step after a Redis restart."""
    return random.uniform(0, min(5.0, 0.1 * 2**failures))


class HubDispatch:
    """The rules a hub applies to each message its pub/sub link reads; holds only the bad-record log's state."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        listeners: Mapping[str, set[Any]],
        by_identity: Mapping[tuple[str, str], Any],
        control_channel: str,
        heartbeat: str | None,
        delivery: Callable[[str, bytes, bool, str | None, bool], _Fanned],
        answer_probe: Callable[[bytes, int], None],
    ) -> None:
        self._logger = logger  # each hub logs under its own name
        self._listeners = listeners
        self._by_identity = by_identity
        self.control_channel = control_channel
        self._heartbeat = heartbeat.encode() if heartbeat else None
        self._delivery = delivery
        self._answer_probe = answer_probe
        self._bad_logged = -BAD_LOG_INTERVAL  # when a bad record was last logged (time.monotonic())
        self._bad_unlogged = 0  # bad records skipped since then

    def message(self, channel: str, data: bytes) -> None:
        """One pub/sub message as the reader got it; never raises (a record that crossed Redis must never cost the
        link: ``wire.decode`` is total, and this guards the control channel and whatever comes next)."""
        if self._heartbeat is not None and data == self._heartbeat:
            return  # the heartbeat string is never forwarded
        try:
            self.dispatch(channel, data)
        except Exception as exc:
            self.bad("unexpected", exc)

    def dispatch(self, channel: str, data: bytes) -> None:
        """``message`` without the heartbeat check and without its guard (the gevent hub's tests call this)."""
        if channel == self.control_channel:
            self._control(data)
            return
        # a counted publish asks how many sockets it reached (ws4redis.broker.reach)
        if data.startswith(reach.PROBE_MARK):
            self._answer_probe(data, len(self._listeners.get(channel, ())))
            return
        listeners = self._listeners.get(channel)
        if not listeners:
            return
        record = wire.decode(data)  # the envelope never reaches a socket; a raw payload passes through as is
        if isinstance(record, wire.Bad):
            self.bad(record.reason)
            return
        delivery = self._delivery(channel, record.payload, record.text, record.id, record.event)
        delivery.pending = len(listeners)
        for listener in tuple(listeners):
            try:
                listener.deliver(delivery)
            except Exception:  # one broken connection must not stop delivery to the others
                self._logger.exception("ws4redis hub: delivering to a listener failed")

    def bad(self, reason: str, exc: BaseException | None = None) -> None:
        """A message from Redis that cannot be delivered: counted, logged at most once per interval, skipped.

        It may come from a client's bytes only if something publishes them without ws4redis' envelope (a 0.6
        process): a flood must neither fill the log nor reset the link that every socket of the worker shares.
        """
        metrics.BAD_RECORDS.labels(reason).inc()
        self._bad_unlogged += 1
        now = time.monotonic()
        if now - self._bad_logged >= BAD_LOG_INTERVAL:
            self._logger.warning(
                "ws4redis hub: skipped %d message(s) from Redis that ws4redis cannot parse (last: %s%s); counted in "
                "ws4redis_bad_records", self._bad_unlogged, reason, f": {exc!r}" if exc is not None else "",
            )
            self._bad_logged, self._bad_unlogged = now, 0

    def tell(self, callback: Callable[..., object], *args: Any) -> None:
        """Call one listener's callback; one broken connection must not keep the others from being told."""
        try:
            callback(*args)
        except Exception:
            self._logger.exception("ws4redis hub: a listener failed to take a notice")

    def each_listener(self) -> Iterator[Any]:
        """Every local listener once, however many channels it listens to."""
        seen: set[int] = set()
        for listeners in list(self._listeners.values()):
            for listener in tuple(listeners):
                if id(listener) not in seen:
                    seen.add(id(listener))
                    yield listener

    # -- the control channel -----------------------------------------------------------------------------------------
    def _control(self, data: bytes) -> None:
        message = parse_control(data)
        kind = message.get("type") if message is not None else None
        if message is None or kind not in ("revoke", "drain"):
            self.bad("malformed control message")
            return
        if kind == "drain":
            self._drain(message)
            return
        targets: set[Any] = set()
        for key in ("user", "session"):
            name = message.get(key)
            if name:
                holders = self._by_identity.get((key, str(name)))
                if isinstance(holders, set):
                    targets |= holders
                elif holders is not None:  # the one listener of this user or session (Subscriptions.by_identity)
                    targets.add(holders)
        if targets:
            self._logger.info("ws4redis hub: revoking %d websocket(s)", len(targets))
        for listener in targets:
            self.tell(listener.revoke)

    def _drain(self, message: dict[str, Any]) -> None:
        """Close every local socket with 1001, each with its own reconnect delay within the window (no storm)."""
        target = message.get("instance")
        if target and target != instance_name():
            return
        try:
            window = max(float(message.get("window") or 0), _DRAIN_MIN)
        except (TypeError, ValueError, OverflowError):
            window = _DRAIN_DEFAULT
        if not math.isfinite(window):  # "inf" or "nan" would make no delay at all (and int() of it raises)
            window = _DRAIN_DEFAULT
        listeners = list(self.each_listener())
        self._logger.info("ws4redis hub: draining %d websocket(s) over %.1fs", len(listeners), window)
        for listener in listeners:
            self.tell(listener.shutdown, int(random.uniform(_DRAIN_MIN, window) * 1000))


class IdleWritable(Protocol):
    def write_nowait(self) -> int: ...


def write_idle(pending: Iterable[IdleWritable], log: logging.Logger) -> None:
    """One round of the loop's writes to idle sockets, for both runtimes' writers: each socket's queue in one
    non-blocking write (``write_nowait`` returns how many messages went out), one broken socket never stopping the
    others, and the delivered count added once per round rather than per socket."""
    written = 0
    for connection in pending:
        try:
            written += connection.write_nowait()
        except Exception:
            log.exception("ws4redis: writing to a websocket failed")
    if written:
        metrics.DELIVERED.inc(written)
