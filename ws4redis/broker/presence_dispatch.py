"""Sending presence signals outside the hub and the sockets: a bounded queue and one greenlet per process.

A transition is decided in Redis by a socket's greenlet (connect, disconnect) or by the sweeper; the Django signal
is then only queued here. One dispatcher greenlet per process runs the receivers, one at a time and in the order the
process decided the transitions, so a slow receiver (an email sent inline, a push service) delays no message
delivery and no other socket: it delays later signals of the same process. When the queue is full
(``WS4REDIS_PRESENCE_SIGNAL_QUEUE``), the new signal is dropped, counted (``ws4redis_messages_dropped`` with reason
``presence_signal``) and logged at ERROR: the transition is already decided in Redis, and nothing sends it again.
A receiver's exception is logged with its traceback and does not stop the others.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import gevent
import gevent.queue
from django.db import close_old_connections
from django.dispatch import Signal

from ws4redis import metrics, settings

__all__ = ["Dispatcher", "Transition", "dispatcher", "send_now"]

logger = logging.getLogger("ws4redis.presence_dispatch")  # its name before the move: logging configurations keep it


@dataclasses.dataclass(frozen=True)
class Transition:
    """Someone (``who``: ``u:<username>`` or ``s:<session hash>``) came online or went offline on ``facility``."""

    online: bool
    facility: str
    who: str

    @property
    def label(self) -> str:
        return f"{'online' if self.online else 'offline'} {self.who[:2]}… on {self.facility}"


def send_now(transition: Transition) -> None:
    """Run the receivers of ``transition``'s signal here and now, logging each receiver's failure."""
    from ws4redis import signals

    kind, _, name = transition.who.partition(":")
    signal: Signal
    if kind == "u":
        signal = signals.user_online if transition.online else signals.user_offline
        responses = signal.send_robust(signals.Presence, user=name, facility=transition.facility)
    else:
        signal = signals.session_online if transition.online else signals.session_offline
        responses = signal.send_robust(signals.Presence, session=name, facility=transition.facility)
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error(
                "ws4redis presence: receiver %r of %s failed", receiver, transition.label,
                exc_info=(type(response), response, response.__traceback__),
            )


class Dispatcher:
    """One process's queue of signals to send and the greenlet sending them (spawned when first needed)."""

    def __init__(self, size: int) -> None:
        self._queue: gevent.queue.Queue[Transition] = gevent.queue.Queue(maxsize=max(size, 1))
        self._greenlet: gevent.Greenlet | None = None

    def emit(self, transition: Transition) -> None:
        """Queue ``transition``'s signal without blocking; never raises (a full queue drops it, counted and logged)."""
        try:
            self._queue.put_nowait(transition)
        except gevent.queue.Full:
            metrics.DROPPED.labels("presence_signal").inc()
            logger.error(
                "ws4redis presence: dropped the %s signal: %d waiting (WS4REDIS_PRESENCE_SIGNAL_QUEUE)",
                transition.label, self._queue.qsize(),
            )
            return
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    @property
    def waiting(self) -> int:
        return int(self._queue.qsize())

    def _run(self) -> None:
        while True:
            transition = self._queue.get()
            try:
                send_now(transition)
            except Exception:  # send_robust catches receivers' errors; this is anything else, and must not kill us
                logger.exception("ws4redis presence: sending the %s signal failed", transition.label)
            if self._queue.empty():
                close_old_connections()  # receivers' database connections obey CONN_MAX_AGE, as after a request


_dispatcher: tuple[int, Dispatcher] | None = None


def dispatcher() -> Dispatcher:
    """This process's dispatcher, created on first use after the fork."""
    global _dispatcher
    if _dispatcher is None or _dispatcher[0] != os.getpid():
        _dispatcher = (os.getpid(), Dispatcher(int(settings.get("WS4REDIS_PRESENCE_SIGNAL_QUEUE"))))
    return _dispatcher[1]
