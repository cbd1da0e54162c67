"""A hub's channel table, for both hubs (gevent and asyncio): who listens to which channel, what Redis confirmed, and
who is owed a notice after a reconnect. Pure bookkeeping: the hub sends the commands and waits on the events.

- Reference counting: a channel's first listener makes it *new* (the hub sends ``SUBSCRIBE``), its last one makes
  it *gone* (``UNSUBSCRIBE``).
- Confirmation: each channel has a ready event (``gevent.event.Event`` or ``asyncio.Event``: the hub says which), set
  once every ``SUBSCRIBE`` of it in flight was answered, cleared when the link goes. ``unconfirmed`` holds only what
  is in flight, so it is bounded by the channels listened to (it once grew by every channel name ever subscribed).
- After a reconnect, the listeners are owed one ``hub_reconnected``, due once Redis confirmed every channel on the
  new link; the debt outlives a link lost again before that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from ws4redis import metrics
from ws4redis.core.delivery import Delivery
from ws4redis.exceptions import Ws4RedisError

__all__ = ["HubUnavailable", "Listener", "Subscriptions"]


class HubUnavailable(Ws4RedisError):
    """Redis did not confirm a subscription in time; the websocket request is answered with 503."""


class Listener(Protocol):
    """What the hub needs of a websocket connection."""

    def deliver(self, delivery: Delivery) -> None:
        """Queue ``delivery`` for the connection to write; must not block or switch greenlets."""

    def hub_reconnected(self) -> None:
        """The pub/sub link was re-established and Redis confirmed every channel on it; messages published while it
        was down were not received, those published from now on are."""

    def revoke(self) -> None:
        """The user or session of this connection was logged out, deleted or deactivated."""

    def shutdown(self, reconnect_in_ms: int) -> None:
        """The server is going away: close with 1001 and suggest reconnecting after ``reconnect_in_ms``."""


class Ready(Protocol):
    """What the table needs of an event (``gevent.event.Event`` and ``asyncio.Event`` both are one)."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def is_set(self) -> bool: ...


class Subscriptions:
    """One hub's channel -> listeners table and the state of its subscriptions at Redis."""

    def __init__(self, event: Callable[[], Any]) -> None:
        self._event = event  # makes a ready event of the hub's runtime
        self.listeners: dict[str, set[Any]] = {}
        # ("user"|"session", name) -> its listener, or a set of them when it has several: most users and sessions
        # have one socket, and a set of one cost 216 bytes per key, twice per authenticated socket (issue 22).
        self.by_identity: dict[tuple[str, str], Any] = {}
        self.ready: dict[str, Any] = {}
        self.unconfirmed: dict[str, int] = {}  # SUBSCRIBEs sent and not yet answered, per channel
        self.resubscribing: set[str] | None = None  # channels to be confirmed before the notice; None: none owed

    def add(self, listener: Any, channels: Iterable[str], identity: Iterable[tuple[str, str]] = ()) -> list[str]:
        """``listener`` listens to ``channels``; returns the channels nobody listened to before (to subscribe)."""
        by_identity = self.by_identity
        for key in identity:
            holders = by_identity.get(key)
            if holders is None:
                by_identity[key] = listener
            elif isinstance(holders, set):
                holders.add(listener)
            elif holders is not listener:
                by_identity[key] = {holders, listener}
        new: list[str] = []
        for channel in channels:
            listeners = self.listeners.get(channel)
            if listeners is None:
                listeners = self.listeners[channel] = set()
                self.ready[channel] = self._event()
                new.append(channel)
            listeners.add(listener)
        if new:
            metrics.SUBSCRIPTIONS.set(len(self.listeners))
        return new

    def remove(self, listener: Any, channels: Iterable[str], identity: Iterable[tuple[str, str]] = ()) -> list[str]:
        """``listener`` stops listening; returns the channels nobody listens to any more (to unsubscribe)."""
        by_identity = self.by_identity
        for key in identity:
            holders = by_identity.get(key)
            if holders is listener:
                del by_identity[key]
            elif isinstance(holders, set):
                holders.discard(listener)
                if len(holders) == 1:
                    by_identity[key] = next(iter(holders))
        gone: list[str] = []
        for channel in dict.fromkeys(channels):
            listeners = self.listeners.get(channel)
            if listeners is None:
                continue
            listeners.discard(listener)
            if not listeners:
                del self.listeners[channel]
                self.ready.pop(channel, None)
                gone.append(channel)
        if gone:
            metrics.SUBSCRIPTIONS.set(len(self.listeners))
        return gone

    def waits(self, channels: Iterable[str]) -> Iterator[Any]:
        """The ready events of ``channels`` that are not set, each looked up when the previous one was waited for."""
        for channel in channels:
            ready = self.ready.get(channel)
            if ready is not None and not ready.is_set():
                yield ready

    def sent(self, channels: Iterable[str]) -> None:
        """A ``SUBSCRIBE`` of ``channels`` is going out."""
        for channel in channels:
            self.unconfirmed[channel] = self.unconfirmed.get(channel, 0) + 1

    def settle(self, channel: str) -> int:
        """One ``SUBSCRIBE`` of ``channel`` is settled (answered, or never sent); how many are still in flight."""
        left = self.unconfirmed.pop(channel, 1) - 1
        if left > 0:
            self.unconfirmed[channel] = left
        return left

    def confirm(self, channel: str) -> bool:
        """Redis answered a ``SUBSCRIBE`` of ``channel``; ``True`` when that completes a reconnect's resubscription
        (the hub then tells every listener, once)."""
        left = self.settle(channel)
        ready = self.ready.get(channel)
        if left <= 0 and ready is not None and channel in self.listeners:
            ready.set()
        resubscribing = self.resubscribing
        if resubscribing is not None:
            resubscribing.discard(channel)
            if not resubscribing:
                self.resubscribing = None
                return True
        return False

    def link_lost(self, *, owe_notice: bool) -> None:
        """The link went: nothing is confirmed any more; after a failure the listeners are owed a notice."""
        for ready in self.ready.values():
            ready.clear()
        if owe_notice and self.resubscribing is None:
            self.resubscribing = set()

    def link_up(self, control: str) -> list[str]:
        """A new link: every channel (``control`` first) is to be subscribed on it, each counted as sent once."""
        channels = [control, *self.listeners]
        self.unconfirmed = {channel: 1 for channel in channels}
        if self.resubscribing is not None:
            self.resubscribing = set(channels)
        return channels

    def sizes(self) -> dict[str, int]:
        """Entries in each table a client can add to (each returns to its size once the client's sockets are gone)."""
        return {
            "listeners": len(self.listeners), "ready": len(self.ready), "unconfirmed": len(self.unconfirmed),
            "identities": len(self.by_identity),
        }
