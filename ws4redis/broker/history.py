"""History: a Redis Stream per channel, so a client (or a worker whose Redis link dropped) gets back what it missed.

Turned on per facility by ``WS4REDIS_HISTORY`` (``{"chat": {"size": 1000, "ttl": 3600}, "feed-*": {...}}``). For such
a facility one publish is one Lua script per channel, in the publisher's single round trip: XADD to the channel's
stream (``MAXLEN ~ size``, ``EXPIRE ttl``), PUBLISH, and the kept last message (``WS4REDIS_EXPIRE``). Atomic, so the
order of the stream is the order of pub/sub: what a socket replays and what it receives live can be merged by id.

The pub/sub message of a history-enabled channel carries its stream id in ws4redis' envelope (``ws4redis.core.wire``),
written by the publish script itself, which the hub reads and strips before anything reaches a socket::

    b"\\xffW4R1" + kind + b"1700000000000-0" + b"\\n" + payload

so a legacy client still receives the payload byte for byte, and the kept message (``SET``) is the payload alone. No
client payload can take the id's place: the envelope is in front of every payload ws4redis publishes, and a message
without it (a django-websocket-redis 0.6 publisher) is delivered with no id, never parsed.

Recovery (``Recovery``: one per socket with a history channel; the others share an immutable ``NoRecovery``)
tracks the last id each socket was sent per history-enabled channel, replays
``XRANGE (last +`` when the client resumes or the hub reconnects, and drops live deliveries the replay already sent.
Whether the window still holds a position is decided by ``recoverable`` (pure).
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis

from ws4redis import settings
from ws4redis.broker.audience import prefix_of
from ws4redis.broker.redis_batch import Batch, run, sharded
from ws4redis.core import wire

__all__ = [
    "ZERO",
    "NoRecovery",
    "Recovery",
    "Window",
    "history_key",
    "own_recovery",
    "parse_id",
    "queue_publish",
    "recoverable",
    "recovery_for",
    "window_for",
]

logger = logging.getLogger("ws4redis.history")  # its name before the move: logging configurations keep it

StreamId = tuple[int, int]
#: "Before everything": the position of a socket that subscribed while its channel's stream did not exist.
ZERO: StreamId = (0, 0)
_MAX_SEQ = 2**64 - 1  # a stream id's sequence part is an unsigned 64-bit number

# One publish to a history-enabled channel: atomic, so stream order == pub/sub order. KEYS: channel, stream.
# ARGV: payload, kept-message expiry (0: none), size, ttl, envelope head (ws4redis.core.wire.head), PUBLISH or SPUBLISH,
# frame type ("t" or "b", kept beside the payload so a replay sends the frame type the publisher chose).
_PUBLISH_SCRIPT = """
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'd', ARGV[1], 'k', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local n = redis.call(ARGV[6], KEYS[1], ARGV[5] .. id .. '\\n' .. ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return n
"""


@dataclasses.dataclass(frozen=True)
class Window:
    """How much of a channel's past is kept: at least ``size`` messages (trimming is approximate), for ``ttl`` seconds
    after the last publish."""

    size: int
    ttl: int


def window_for(channel: str) -> Window | None:
    """The history window of ``channel`` from ``WS4REDIS_HISTORY``, or ``None`` when its facility keeps none."""
    entry = settings.for_channel("WS4REDIS_HISTORY", channel)
    if entry is None:
        return None
    return Window(size=int(entry.get("size", 1000)), ttl=int(entry.get("ttl", 3600)))


def history_key(channel: str) -> str:
    """The stream key of ``channel``: ``{prefix:}history:{<channel>}``, e.g. ``p:history:{p:broadcast:news}``.

    The braces are a Redis Cluster hash tag: the stream lands in the slot of the channel itself, which is also the
    kept message's key and the SPUBLISH channel, so the one atomic publish script touches a single slot. (A channel
    name holding ``}`` would break that tag; ws4redis names never do unless a user or group name contains one.)
    No channel starts with ``history:``, and the key keeps ``WS4REDIS_PREFIX`` in front like every other ws4redis key.
    """
    head = prefix_of(settings.get("WS4REDIS_PREFIX"))
    return f"{head}history:{{{channel}}}"


def queue_publish(pipe: Any, channel: str, message: bytes, expire: int, window: Window, *, text: bool) -> None:
    """Queue on ``pipe`` the atomic XADD + PUBLISH (+ kept message) of one channel; its reply is the PUBLISH count.

    ``message`` is the payload; the script puts it in ws4redis' envelope with its stream id (``ws4redis.core.wire``),
    to be
    sent as a text frame when ``text`` (valid UTF-8 only), else as a binary frame.

    EVAL with the script's text rather than EVALSHA: still one round trip, and no NOSCRIPT failure after a Redis
    restart to recover from in the middle of someone else's pipeline.
    """
    # Redis Cluster: SPUBLISH, so only the shard owning the channel's slot carries it (the hubs SSUBSCRIBE there).
    command = "SPUBLISH" if sharded(pipe) else "PUBLISH"
    # execute_command rather than eval(): redis-py's cluster pipeline refuses eval() but routes an EVAL by its keys.
    pipe.execute_command(
        "EVAL",
        _PUBLISH_SCRIPT,
        2,
        channel,
        history_key(channel),
        message,
        max(expire, 0),
        window.size,
        window.ttl,
        wire.head(text=text),
        command,
        b"t" if text else b"b",
    )


def parse_id(value: object) -> StreamId | None:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``; ``None`` for anything that is not a stream id (strict ASCII
    digits, as ``ws4redis.core.wire.parse_stream_id``: a client's ``resume`` and a record from Redis never raise)."""
    return wire.parse_stream_id(value)


def before(value: StreamId) -> StreamId:
    """The greatest stream id below ``value`` (``ZERO`` for ``ZERO``): "everything up to, not including, ``value``"."""
    ms, seq = value
    if seq:
        return ms, seq - 1
    return (ms - 1, _MAX_SEQ) if ms else ZERO


def format_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


def entry_text(fields: Mapping[bytes, bytes], data: bytes) -> bool:
    """Whether a stream entry's payload goes out as a text frame: as its publisher chose (field ``k``), by content
    for entries written before ws4redis kept the frame type; a ``t`` entry that is not UTF-8 goes out binary."""
    kind = fields.get(b"k")
    return kind != b"b" and wire.is_text(data)


def recoverable(since: StreamId, *, exists: bool, first: StreamId | None, max_deleted: StreamId | None) -> bool:
    """Whether a stream still holds everything published after ``since``.

    - A missing stream: only when the position is ``ZERO`` (the stream did not exist then either); otherwise it
      expired or was reset (a Redis restart without persistence, a DEL), and what it held is gone.
    - The first entry at or before the successor of ``since``: nothing after ``since`` can have been trimmed.
    - Otherwise, with Redis >= 7 (``max-deleted-entry-id``): nothing after ``since`` was trimmed iff the largest id
      ever trimmed is not after it. A stream recreated after ``since`` starts after it, so its trimmed ids (if any) are
      after ``since`` too, and ``0-0`` (nothing trimmed) proves nothing about a reset; hence ``max_deleted != ZERO``.
      From ``ZERO``, ``0-0`` means nothing was ever trimmed since the stream was created: all of it is there.
    """
    if not exists:
        return since == ZERO
    if first is not None and first <= (since[0], since[1] + 1):
        return True
    if max_deleted is None:
        return False
    if since == ZERO:
        return max_deleted == ZERO
    return max_deleted != ZERO and max_deleted <= since


def _xinfo_id(info: Mapping[Any, Any], name: str) -> StreamId | None:
    value = info.get(name)
    if isinstance(value, (tuple, list)):  # first-entry: (id, fields)
        value = value[0] if value else None
    return parse_id(value) if isinstance(value, (bytes, str)) else None


class Recovery:
    """One socket's positions in the streams of its history-enabled channels: per-socket state, never shared.

    Created per connection that needs one (``recovery_for``, ``own_recovery``); every method runs in the connection's
    own greenlet. ``last`` is the id of the last message *sent* on each channel: the point to replay from.
    """

    __slots__ = ("last", "pending", "sent", "windows")

    def __init__(self, channels: Iterable[str]) -> None:
        self.windows: dict[str, Window] = {}
        for channel in channels:
            window = window_for(channel)
            if window is not None:
                self.windows[channel] = window
        self.last: dict[str, StreamId] = {}
        self.sent: set[str] = set()  # channels on which this socket sent something: a resume never goes behind ``last``
        self.pending = False  # the hub reconnected: replay from ``last`` at the next wake-up

    @property
    def enabled(self) -> bool:
        return bool(self.windows)

    def start(
        self, client: redis.Redis, channels: Iterable[str] | None = None,
        live: Callable[[], Mapping[str, StreamId]] | None = None,
    ) -> None:
        """Record where each stream (of ``channels``, default all) stands now; call once Redis confirmed the
        subscriptions (so nothing after it is missed by pub/sub) and before anything is sent on them. One round trip.

        ``live()`` (channel -> the id of its first message in the live queue, asked once Redis answered): the hub may
        have queued messages between Redis' confirmation and this read, and the stream's top counts them already; the
        position is put just before the first of them, or ``fresh`` would drop them as sent.
        A channel subscribed at run time is started here too, so a hub reconnect replays it like the others.
        """
        batch = self.start_batch(channels, live)
        if batch is not None:
            run(client, batch)

    def start_batch(
        self, channels: Iterable[str] | None = None, live: Callable[[], Mapping[str, StreamId]] | None = None,
    ) -> Batch[None] | None:
        """``start`` as one ``Batch`` for either client (``ws4redis.broker.redis_batch``); ``None``: nothing to read."""
        chosen = list(self.windows) if channels is None else [c for c in channels if self.track(c)]
        if not chosen:
            return None

        def queue(pipe: Any) -> None:
            for channel in chosen:
                pipe.xrevrange(history_key(channel), count=1)

        return Batch(queue, lambda tops: self._started(chosen, tops, live))

    def _started(
        self, chosen: list[str], tops: list[Any], live: Callable[[], Mapping[str, StreamId]] | None,
    ) -> None:
        first_live = live() if live is not None else {}
        for channel, top in zip(chosen, tops, strict=True):
            position = (parse_id(top[0][0]) if top else None) or ZERO
            queued = first_live.get(channel)
            if queued is not None and queued <= position:
                position = before(queued)
            self.last[channel] = max(position, self.last.get(channel, ZERO))

    def forget(self, channels: Iterable[str]) -> None:
        """The socket stopped listening to ``channels`` (``unsubscribe``): never replay them to it again."""
        for channel in channels:
            self.windows.pop(channel, None)
            self.last.pop(channel, None)
            self.sent.discard(channel)

    def offsets(self) -> dict[str, str]:
        """Channel -> the position recorded by ``start`` (for the v2 welcome, so a client can resume a stream on
        which it has not yet received a message)."""
        return {channel: format_id(pos) for channel, pos in self.last.items()}

    def track(self, channel: str) -> bool:
        """Whether ``channel`` keeps history; a channel this socket subscribed to later (``subscribe``) is added."""
        if channel in self.windows:
            return True
        window = window_for(channel)
        if window is None:
            return False
        self.windows[channel] = window
        return True

    def fresh(self, channel: str, message_id: str | None) -> bool:
        """Whether a live delivery should be sent: ``False`` for one already sent (by a replay); advances ``last``."""
        if message_id is None or not self.track(channel):
            return True
        parsed = parse_id(message_id)
        if parsed is None:
            return True
        last = self.last.get(channel)
        if last is not None and parsed <= last:
            return False
        self.last[channel] = parsed
        self.sent.add(channel)
        return True

    def replay(
        self, client: redis.Redis, since: Mapping[str, StreamId],
        live: Callable[[], Mapping[str, StreamId]] | None = None,
    ) -> tuple[list[tuple[str, str, bytes, bool]], list[str]]:
        """What was published after ``since`` (channel -> position) on history-enabled channels, in publish order.

        ``live()`` (channel -> the id of the first message queued live on it, asked once Redis answered) ends each
        channel's replay, for a resume only, where the live queue holds every message since ``start``: from there on
        the queue has the channel's messages, in order with the socket's channels without history, so a replayed copy
        would overtake those. After a hub reconnect the queue has a hole (what the dropped link never delivered), so
        the caller passes no ``live`` and everything after ``since`` is replayed; its live copies are dropped by
        ``fresh`` (order is then kept per channel). A message the hub has not read yet when Redis answers is replayed
        too, and its live copy dropped.

        A channel on which this socket already sent something is never replayed from before ``last``: a client whose
        ``since`` is older gets nothing twice. Returns ``(messages, lost)``: ``(channel, id, payload, text)`` sorted by
        id across channels (stream ids come from one Redis clock, so this is publish order), and the channels whose
        window no longer reaches back to ``since`` (their messages after the window are still replayed: better late
        than a larger gap). Advances ``last``, so live deliveries the replay covered are dropped by ``fresh``. One
        round trip.
        """
        batch = self.replay_batch(since, live)
        return ([], []) if batch is None else run(client, batch)

    def replay_batch(
        self, since: Mapping[str, StreamId], live: Callable[[], Mapping[str, StreamId]] | None = None,
    ) -> Batch[tuple[list[tuple[str, str, bytes, bool]], list[str]]] | None:
        """``replay`` as one ``Batch`` for either client (``ws4redis.broker.redis_batch``); ``None``: nothing to
        replay."""
        channels = [channel for channel in since if channel in self.windows]
        if not channels:
            return None

        def queue(pipe: Any) -> None:
            for channel in channels:
                key = history_key(channel)
                pipe.xinfo_stream(key)
                position = since[channel]
                pipe.xrange(key, min="-" if position == ZERO else f"({format_id(position)}")

        return Batch(queue, lambda results: self._replayed(channels, since, results, live), raise_on_error=False)

    def _replayed(
        self, channels: list[str], since: Mapping[str, StreamId], results: list[Any],
        live: Callable[[], Mapping[str, StreamId]] | None,
    ) -> tuple[list[tuple[str, str, bytes, bool]], list[str]]:
        first_live = live() if live is not None else {}
        messages: list[tuple[StreamId, str, str, bytes, bool]] = []
        lost: list[str] = []
        for index, channel in enumerate(channels):
            info, entries = results[2 * index], results[2 * index + 1]
            exists = not isinstance(info, Exception)
            if isinstance(entries, Exception):
                raise entries
            if exists:
                ok = recoverable(
                    since[channel], exists=True, first=_xinfo_id(info, "first-entry"),
                    max_deleted=_xinfo_id(info, "max-deleted-entry-id"),
                )
            else:
                ok = recoverable(since[channel], exists=False, first=None, max_deleted=None)
            if not ok:
                lost.append(channel)
            last = self.last.get(channel, ZERO)
            start = max(since[channel], last) if channel in self.sent else since[channel]
            end = first_live.get(channel)
            for raw_id, fields in entries:
                parsed = parse_id(raw_id)
                if parsed is None or parsed <= start:
                    continue
                if end is not None and parsed >= end:
                    break  # the live queue carries it, in order
                data = bytes(fields.get(b"d", b""))
                messages.append((parsed, channel, format_id(parsed), data, entry_text(fields, data)))
                last = max(last, parsed)
                self.sent.add(channel)
            self.last[channel] = last
        messages.sort(key=lambda m: m[0])
        return [(channel, message_id, data, text) for _, channel, message_id, data, text in messages], lost


class NoRecovery:
    """The positions of a socket none of whose channels keeps history: none, and none can be added.

    One instance is shared by every such socket (the usual case: a ``Recovery`` per idle socket is memory for
    nothing), so it is a value: no attribute can be set, the mappings are read-only views of empty dicts, and no
    method records anything. Asking about a history channel answers without remembering it; a socket that comes to
    need positions (it subscribes to a history facility at run time) takes its own ``Recovery`` (``own_recovery``).
    """

    __slots__ = ()

    enabled = False
    pending = False
    windows: Mapping[str, Window] = types.MappingProxyType({})
    last: Mapping[str, StreamId] = types.MappingProxyType({})
    sent: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"the shared NoRecovery is immutable (cannot set {name!r}); see own_recovery")

    def start(
        self, client: redis.Redis, channels: Iterable[str] | None = None,
        live: Callable[[], Mapping[str, StreamId]] | None = None,
    ) -> None:
        """Nothing to record."""

    def start_batch(
        self, channels: Iterable[str] | None = None, live: Callable[[], Mapping[str, StreamId]] | None = None,
    ) -> None:
        """Nothing to read."""

    def replay_batch(
        self, since: Mapping[str, StreamId], live: Callable[[], Mapping[str, StreamId]] | None = None,
    ) -> None:
        """Nothing to replay."""

    def forget(self, channels: Iterable[str]) -> None:
        """Nothing to forget."""

    def offsets(self) -> dict[str, str]:
        return {}

    @staticmethod
    def track(channel: str) -> bool:
        """Whether ``channel`` keeps history (asked, never recorded)."""
        return window_for(channel) is not None

    @staticmethod
    def fresh(channel: str, message_id: str | None) -> bool:
        """Every live delivery is fresh: nothing was replayed to this socket."""
        return True

    def replay(
        self, client: redis.Redis, since: Mapping[str, StreamId],
        live: Callable[[], Mapping[str, StreamId]] | None = None,
    ) -> tuple[list[tuple[str, str, bytes, bool]], list[str]]:
        return [], []


_NO_HISTORY = NoRecovery()


def recovery_for(channels: Iterable[str]) -> Recovery | NoRecovery:
    """A socket's positions: its own ``Recovery`` when a channel keeps history, else the one shared, immutable
    ``NoRecovery`` (the usual case costs no memory per socket)."""
    recovery = Recovery(channels)
    return recovery if recovery.enabled else _NO_HISTORY


def own_recovery(recovery: Recovery | NoRecovery, channels: Iterable[str]) -> Recovery:
    """``recovery`` when it is the socket's own already, else a new ``Recovery`` of ``channels`` (the socket's
    channels now): what a socket takes at the moment it first needs positions of its own."""
    return recovery if isinstance(recovery, Recovery) else Recovery(channels)
