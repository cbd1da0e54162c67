"""Presence: who is connected to a channel, kept in Redis so any process (a view, a task) can ask.

Turned on per facility by ``WS4REDIS_PRESENCE`` (``{"chat": {"ttl": 30, "events": True}, "room-*": {...}}``). Each
socket on such a channel is one member of a sorted set ``{prefix:}presence:{channel without prefix}`` whose score is
the time its entry expires. The socket's own periodic wake-up refreshes it every ``ttl / 3`` seconds, and removes it
when the socket closes. A worker that is killed refreshes nothing, so its sockets' entries simply fall out of the
window ``ttl`` seconds later: there is nothing to clean up after a crash, and no process is trusted to do it.

The member is the entry itself (compact JSON: an opaque connection id, the username, a hash of the session key, the
time of joining), so one key per channel holds everything, and a read is one round trip. The session key is a
credential: only a truncated SHA-256 of it is stored.

With ``"events": True`` joining and leaving are published on the channel as v2 control messages
(``{"type":"join","channel":...,"audience":...,"user":"alice","client":"..."}``), as event records of ws4redis'
envelope (``ws4redis.core.wire``), so legacy clients never see them and no client payload can pass for one. An entry
that
expires (a killed worker) produces no ``leave`` event.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import time
import types
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis

from ws4redis import settings
from ws4redis.broker.audience import channel_names, prefix_of
from ws4redis.broker.redis_batch import Batch, run
from ws4redis.core import wire

__all__ = ["NoPresence", "Present", "Tracker", "presence", "presence_key", "tracker_for"]

logger = logging.getLogger("ws4redis.presence")  # its name before the move: logging configurations keep it

_AUDIENCES = ("broadcast", "user", "group", "session")


@dataclasses.dataclass(frozen=True)
class Present:
    """Someone connected to a channel: a user (all their sockets together), or an anonymous session.

    ``session`` is a truncated hash of the session key (never the key); ``None`` without a session.
    """

    user: str | None
    session: str | None
    connections: int
    since: datetime.datetime

    @property
    def label(self) -> str:
        """The username, or ``"anonymous"``: what a page may show without revealing a session."""
        return self.user if self.user is not None else "anonymous"


def _config(channel: str) -> Mapping[str, Any] | None:
    entry: Mapping[str, Any] | None = settings.for_channel("WS4REDIS_PRESENCE", channel)
    return entry


def presence_key(channel: str) -> str:
    """``{prefix:}presence:{channel without prefix}`` (never a channel's own key: no channel starts with it)."""
    head = prefix_of(settings.get("WS4REDIS_PREFIX"))
    rest = channel[len(head) :] if head and channel.startswith(head) else channel
    return f"{head}presence:{rest}"


def _session_hash(key: str | None) -> str | None:
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else None


def presence(
    facility: str, audience: str = "broadcast", name: str | None = None, *, connection: redis.Redis | None = None
) -> list[Present]:
    """Who is connected to the ``audience`` channel of ``facility`` now, sorted by label.

    ``audience`` is ``broadcast`` (everyone who subscribed to the facility's broadcasts), or ``group``, ``user`` or
    ``session`` with ``name`` the group, username or session key. Expired entries (crashed workers) are removed
    on the way, in the same round trip.
    """
    if audience not in _AUDIENCES:
        raise ValueError(f"audience must be one of {_AUDIENCES}, not {audience!r}")
    if audience != "broadcast" and not name:
        raise ValueError(f"audience {audience!r} needs a name")
    kwargs: dict[str, Any] = {"broadcast": True} if audience == "broadcast" else {f"{audience}s": [name]}
    (channel,) = channel_names(prefix=settings.get("WS4REDIS_PREFIX"), facility=facility, **kwargs)
    if connection is None:
        from ws4redis.broker.redis_store import get_connection

        connection = get_connection()
    key = presence_key(channel)
    now = time.time()
    pipe = connection.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", now)
    pipe.zrangebyscore(key, now, "+inf")
    _, members = pipe.execute()
    people: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for raw in members:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        who = ("user", entry["u"]) if entry.get("u") else ("session", entry.get("s") or entry.get("c", ""))
        people.setdefault(who, []).append(entry)
    found = [
        Present(
            user=entries[0].get("u"),
            session=None if entries[0].get("u") else entries[0].get("s"),
            connections=len(entries),
            since=datetime.datetime.fromtimestamp(min(e["t"] for e in entries), tz=datetime.timezone.utc),
        )
        for entries in people.values()
    ]
    return sorted(found, key=lambda p: (p.user is None, p.label, p.session or ""))


class Tracker:
    """One socket's presence entries on its presence-enabled channels; methods run in the socket's greenlet.

    Failures are logged, never raised: presence is advisory, and a Redis hiccup must not close a socket that is
    otherwise fine (its entry then expires or is refreshed at the next wake-up).
    """

    def __init__(self, channels: Iterable[str], *, user: str | None, session_key: str | None) -> None:
        self.channels: dict[str, tuple[int, bool]] = {}
        for channel in channels:
            config = _config(channel)
            if config is not None:
                self.channels[channel] = (int(config.get("ttl", 30)), bool(config.get("events", False)))
        self._user = user
        self._due = float("inf")
        self._joined = False
        if not self.channels:  # thrown away by tracker_for, which shares NoPresence instead
            self.client_id = self._member = ""
            return
        self.client_id = uuid.uuid4().hex[:16]
        self._member = json.dumps(
            {"c": self.client_id, "u": user, "s": _session_hash(session_key), "t": round(time.time(), 3)},
            separators=(",", ":"),
        )

    @property
    def refresh_every(self) -> float:
        """Seconds between refreshes: a third of the shortest ttl, so two refreshes may fail before expiry."""
        return min((ttl for ttl, _ in self.channels.values()), default=float("inf")) / 3

    def join(self, client: redis.Redis) -> None:
        batch = self.join_batch()
        if batch is not None:
            run(client, batch)

    def refresh(self, client: Callable[[], redis.Redis], now: float) -> None:
        """Extend this socket's entries when due (``now``: ``time.monotonic()``). Called on every wake-up, so it
        costs one comparison until then; ``client`` is only called when a write is due."""
        batch = self.refresh_batch(now)
        if batch is not None:
            run(client(), batch)

    def leave(self, client: redis.Redis) -> None:
        batch = self.leave_batch()
        if batch is not None:
            run(client, batch)

    # -- the same steps as ``Batch``es, for either client (``ws4redis.broker.redis_batch``); ``None``: nothing to write
    def join_batch(self) -> Batch[None] | None:
        if not self.channels:
            return None
        self._joined = True
        return self._write("join")

    def refresh_batch(self, now: float) -> Batch[None] | None:
        return self._write(None) if self._joined and now >= self._due else None

    def leave_batch(self) -> Batch[None] | None:
        if not self._joined:
            return None
        self._joined = False

        def queue(pipe: Any) -> None:
            for channel, (_, events) in self.channels.items():
                pipe.zrem(presence_key(channel), self._member)
                if events:
                    pipe.publish(channel, self._event("leave"))

        def failed(exc: Exception) -> None:
            logger.warning("ws4redis presence: could not remove an entry (%s); it expires on its own", exc)

        return Batch(queue, _nothing, failed)

    def _write(self, event: str | None) -> Batch[None]:
        def queue(pipe: Any) -> None:
            now = time.time()
            for channel, (ttl, events) in self.channels.items():
                key = presence_key(channel)
                pipe.zadd(key, {self._member: now + ttl})
                pipe.expire(key, ttl)  # the whole set goes when nobody refreshes it (every worker gone)
                if event is not None and events:
                    pipe.publish(channel, self._event(event))

        def written(replies: list[Any]) -> None:
            self._due = time.monotonic() + self.refresh_every

        def failed(exc: Exception) -> None:
            logger.warning("ws4redis presence: could not write an entry (%s); retrying at the next wake-up", exc)
            self._due = time.monotonic()

        return Batch(queue, written, failed)

    def _event(self, kind: str) -> bytes:
        body = json.dumps({"type": kind, "user": self._user, "client": self.client_id}).encode()
        return wire.encode(body, text=True, event=True)


class NoPresence:
    """The tracker of a socket on no presence-enabled channel: one instance shared by all of them, so a value.

    No attribute can be set, ``channels`` is a read-only view of an empty dict, and every method returns at once.
    """

    __slots__ = ()

    channels: Mapping[str, tuple[int, bool]] = types.MappingProxyType({})
    client_id = ""
    refresh_every = float("inf")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"the shared NoPresence is immutable (cannot set {name!r})")

    def join(self, client: redis.Redis) -> None:
        """Nothing to join."""

    def join_batch(self) -> None:
        """Nothing to write."""

    def refresh_batch(self, now: float) -> None:
        """Nothing to write."""

    def leave_batch(self) -> None:
        """Nothing to remove."""

    def refresh(self, client: Callable[[], redis.Redis], now: float) -> None:
        """Nothing to refresh."""

    def leave(self, client: redis.Redis) -> None:
        """Nothing to leave."""


def _nothing(replies: list[Any]) -> None:
    """A write's replies say nothing a socket needs."""


_NO_PRESENCE = NoPresence()


def tracker_for(channels: Iterable[str], *, user: str | None, session_key: str | None) -> Tracker | NoPresence:
    """A socket's tracker: its own ``Tracker`` on presence-enabled channels, else the one shared, immutable
    ``NoPresence`` (the usual case costs no memory per socket)."""
    tracker = Tracker(channels, user=user, session_key=session_key)
    return tracker if tracker.channels else _NO_PRESENCE


# Who is listening in one round trip, and the online/offline signals' module (issue 18): see docs/presence.md.
from ws4redis.broker.presence_query import count, offline, users  # noqa: E402

__all__ += ["count", "offline", "users"]
