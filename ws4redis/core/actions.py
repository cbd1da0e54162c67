"""What a session asks its driver to do: frozen values, executed in the order ``Session.take`` returns them.

Sending queued deliveries is not an action (the hot path): a driver takes them with ``Session.drain``. Every action
whose outcome the session needs names the ``Session`` method the driver feeds that outcome back through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ws4redis.core.protocol import Change

__all__ = [
    "Action", "Close", "Publish", "ReadPositions", "Replay", "RunMessageHook", "Send", "SendKept", "Subscribe",
    "Unsubscribe", "Wake",
]

StreamId = tuple[int, int]


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Send one message (a control notice, an answer, a replayed or kept message) as a text or binary frame."""

    data: bytes
    text: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """End the websocket with ``code``: send nothing more, close, tear down (then ``Session.closed``)."""

    code: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``data`` from the client to ``channels`` (one pipeline; ``WS4REDIS_EXPIRE`` keeps it). No answer."""

    channels: tuple[str, ...]
    data: bytes
    text: bool


@dataclasses.dataclass(frozen=True, slots=True)
class RunMessageHook:
    """Run the facility's message hook on a client's publish; feed ``Session.hooked(new_bytes_or_None, text)``, or
    ``Session.hook_failed()`` when it raised."""

    data: bytes
    text: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribe:
    """A v2 client asks for another facility: authorise it as a connection (policy, connect hook), attach the new
    channels to the hub (confirmed), then ``Session.subscribed(change, audiences, new_channels)`` or
    ``Session.refused(change, reason)``."""

    change: Change


@dataclasses.dataclass(frozen=True, slots=True)
class Unsubscribe:
    """A v2 client drops a facility: work out its channels (``multiplex.channels_to_drop``), detach them from the
    hub, then ``Session.unsubscribed(change, gone)`` (or ``Session.refused``)."""

    change: Change


@dataclasses.dataclass(frozen=True, slots=True)
class SendKept:
    """Read the kept last message of ``channels`` (``WS4REDIS_EXPIRE``) and feed ``Session.kept(pairs)``."""

    channels: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ReadPositions:
    """Record where the history streams stand: ``session.recovery.start(redis, channels, live=session.first_live)``
    (``channels`` ``None``: all). A channel subscribed at run time first needs ``history.own_recovery`` assigned to
    ``session.recovery``. Then ``Session.positions_read(now, ok)``."""

    channels: tuple[str, ...] | None


@dataclasses.dataclass(frozen=True, slots=True)
class Replay:
    """Replay history: ``session.recovery.replay(redis, since, session.first_live if live else None)``, then
    ``Session.replayed(self, messages, lost)``; on a Redis error ``Session.replay_failed(self)``.

    ``reason`` is ``"resume"`` (the client asked) or ``"reconnect"`` (the hub's link came back: first wait for Redis
    to confirm ``since``'s channels on the hub; when it does not, feed ``replayed(self, [], list(since))``).
    ``reasons`` carries what the session already knows for the answer (stream -> why not recovered).
    """

    reason: str
    since: Mapping[str, StreamId]
    live: bool
    reasons: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Wake:
    """Call ``Session.tick`` after ``after`` seconds even if nothing else happens (the resume hold runs out)."""

    after: float


Action = Send | Close | Publish | RunMessageHook | Subscribe | Unsubscribe | SendKept | ReadPositions | Replay | Wake
