"""The idle wheel: one timer per gevent loop runs the periodic duties of all its websockets, spread over the interval.

Before it, every websocket had a repeating timer of its own (``WS4REDIS_WAKE_INTERVAL``), and sockets that connected
in a burst woke in a burst: at 15,000 idle sockets a worker spent 6-12% of a core doing nothing useful, in spikes
(issue 22). Here a worker has one timer per interval; the sockets are dealt round robin into ``SLOTS`` slots, and
each tick serves one slot, so a worker serves ``1 / SLOTS`` of its sockets ``SLOTS`` times per interval: the same
period for every socket as before, the work spread evenly whatever the connect pattern was, and nothing allocated
per socket beyond its entry in a slot.

What a socket does on its turn is the connection's business (``Connection.on_wheel``): a parked one checks its
liveness and its session without a greenlet, and only wakes one when something is due.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import gevent

__all__ = ["SLOTS", "IdleWheel", "wheel_for"]

logger = logging.getLogger(__name__)

#: Slots per interval: with the default 10 s interval a tick every 156 ms serves 1/64 of the worker's sockets.
SLOTS = 64


class _Member(Protocol):
    def on_wheel(self, now: float, wall: float) -> None: ...


class IdleWheel:
    """The periodic turns of every websocket of one loop that share one interval (``wheel_for``)."""

    __slots__ = ("_hand", "_next", "_size", "_slots", "_timer", "interval")

    def __init__(self, loop: Any, interval: float) -> None:
        self.interval = interval
        # Dicts as insertion-ordered sets: O(1) removal when a socket ends, no per-socket object.
        self._slots: list[dict[_Member, None]] = [{} for _ in range(SLOTS)]
        self._next = 0  # the slot the next socket joins: a burst of connections is dealt over all of them
        self._hand = 0  # the slot the next tick serves
        self._size = 0
        tick = interval / SLOTS
        self._timer = loop.timer(tick, tick)

    def __len__(self) -> int:
        return self._size

    def add(self, member: _Member) -> int:
        """Give ``member`` a turn once per interval, starting within one interval; returns its slot (for
        ``remove``)."""
        slot = self._next
        self._next = (slot + 1) % SLOTS
        self._slots[slot][member] = None
        self._size += 1
        if self._size == 1:
            self._timer.start(self._tick)
        return slot

    def remove(self, member: _Member, slot: int) -> None:
        """No more turns for ``member`` (idempotent). The timer stops with the last socket: an empty wheel keeps no
        loop alive (``ws4redis.threaded`` runs a loop per websocket thread)."""
        if self._slots[slot].pop(member, 0) is None:
            self._size -= 1
            if self._size == 0:
                self._timer.stop()

    def _tick(self) -> None:
        slot = self._slots[self._hand]
        self._hand = (self._hand + 1) % SLOTS
        if not slot:
            return
        now, wall = time.monotonic(), time.time()
        # A copy: a turn may end its socket (and so remove it) in a later version of on_wheel; today none does.
        for member in list(slot):
            try:
                member.on_wheel(now, wall)
            except Exception:  # one socket's failure must not cost the others their turn
                logger.exception("ws4redis: the periodic turn of a websocket failed")


def wheel_for(interval: float) -> IdleWheel:
    """The wheel of this thread's gevent loop for ``interval`` (one per interval in use: presence may shorten it)."""
    hub = gevent.get_hub()
    wheels: dict[float, IdleWheel] | None = getattr(hub, "ws4redis_wheels", None)
    if wheels is None:
        wheels = hub.ws4redis_wheels = {}
    wheel = wheels.get(interval)
    if wheel is None:
        wheel = wheels[interval] = IdleWheel(hub.loop, interval)
    return wheel
