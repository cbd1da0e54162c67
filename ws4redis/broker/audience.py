"""Facilities, audiences, query flags and Redis names: pure values, no I/O.

This is the only place a Redis channel or key name is built, so the wire format stays the original's
(``{prefix:}broadcast:{facility}``, ``{prefix:}user:{name}:{facility}``, ``group:``, ``session:``) and a process still
publishing with django-websocket-redis 0.6 reaches ws4redis clients.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from ws4redis.exceptions import UnknownFacility

__all__ = [
    "AUDIENCES",
    "PUBLISH_FLAGS",
    "SELF",
    "SUBSCRIBE_FLAGS",
    "Subscription",
    "channel_names",
    "parse_flags",
    "prefix_of",
    "validate_facility",
]

AUDIENCES = ("broadcast", "user", "group", "session")
SUBSCRIBE_FLAGS = tuple(f"subscribe-{a}" for a in AUDIENCES)
PUBLISH_FLAGS = tuple(f"publish-{a}" for a in AUDIENCES)
MEMBEROF_KEY = "ws4redis:memberof"  # session key where the user's group names are cached at login

# Refused in a facility name: ':' separates the parts of a channel name, glob characters would turn a channel into
# a pattern, and whitespace or control characters have no place in a URL path or a log line.
_BAD_FACILITY = re.compile(r"[:*?\[\]\\\s\x00-\x1f\x7f]")


class _SelfType:
    """The ``SELF`` sentinel: "the user, groups or session of the request given to the publisher"."""

    _instance: _SelfType | None = None

    def __new__(cls) -> _SelfType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SELF"

    def __reduce__(self) -> str:
        return "SELF"


SELF = _SelfType()


# One frozenset per combination of audiences, shared by every socket that asked for it (there are at most 16 each
# way): two fresh frozensets per socket were half a kilobyte of every idle websocket (bench/).
_AUDIENCE_SETS: dict[frozenset[str], frozenset[str]] = {}


def _shared(audiences: Iterable[str]) -> frozenset[str]:
    key = frozenset(audiences)
    return _AUDIENCE_SETS.setdefault(key, key) if key.issubset(AUDIENCES) else key


@dataclasses.dataclass(frozen=True)
class Subscription:
    """What one websocket asked for: its facility, the audiences it listens to and publishes on, and echo."""

    facility: str
    subscribe: frozenset[str]
    publish: frozenset[str]
    echo: bool = False

    @property
    def flags(self) -> list[str]:
        """The query flags in the original's order, as handed to ``WS4REDIS_ALLOWED_CHANNELS``."""
        return [f for f in SUBSCRIBE_FLAGS + PUBLISH_FLAGS if f.split("-", 1)[1] in self._set_of(f)]

    def _set_of(self, flag: str) -> frozenset[str]:
        return self.subscribe if flag.startswith("subscribe-") else self.publish

    def with_flags(self, flags: Iterable[str]) -> Subscription:
        """The same subscription restricted to ``flags`` (what an allowed-channels hook returned)."""
        kept = {str(f).strip().lower() for f in flags}
        return dataclasses.replace(
            self,
            subscribe=_shared(a for a in self.subscribe if f"subscribe-{a}" in kept),
            publish=_shared(a for a in self.publish if f"publish-{a}" in kept),
        )


def validate_facility(name: str, *, max_length: int) -> str:
    """``name`` if it can be a facility, else ``UnknownFacility`` (answered with 404)."""
    if not name or len(name) > max_length or _BAD_FACILITY.search(name) or name.startswith("/"):
        raise UnknownFacility(f"invalid facility name {name[:max_length]!r}")
    return name


def parse_flags(facility: str, query_string: str) -> Subscription:
    """The subscription a query string asks for (``?subscribe-user&publish-broadcast&echo``).

    Unknown flags are ignored, as the original did.
    """
    subscribe: set[str] = set()
    publish: set[str] = set()
    echo = False
    for key, _value in parse_qsl(query_string, keep_blank_values=True):
        flag = key.strip().lower()
        if flag in SUBSCRIBE_FLAGS:
            subscribe.add(flag.split("-", 1)[1])
        elif flag in PUBLISH_FLAGS:
            publish.add(flag.split("-", 1)[1])
        elif flag == "echo":
            echo = True
    return Subscription(facility, _shared(subscribe), _shared(publish), echo)


def prefix_of(prefix: str | None) -> str:
    """The channel prefix as the original wrote it: ``'name:'`` or nothing."""
    return f"{prefix}:" if prefix else ""


def _names(values: Any, request: Any, resolve_self: Any, what: str) -> list[str]:
    """Audience members as strings; ``SELF`` resolved against ``request``; a bare string or ``True`` as the original."""
    if values is True:
        values = [SELF]
    elif isinstance(values, (str, bytes)):
        values = [values]
    elif values is False or values is None:
        return []
    elif not isinstance(values, (list, tuple, set, frozenset)):
        raise ValueError(f"Argument `{what}` must be a list or tuple")
    result: list[str] = []
    for value in values:
        if value is SELF:
            result.extend(resolve_self(request))
        else:
            result.append(_member_name(value))
    return list(dict.fromkeys(result))  # keep order, drop repeats


def _member_name(value: Any) -> str:
    """A user, group or session given as an object or a string, as the string used in channel names."""
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "get_username"):
        return str(value.get_username())
    if hasattr(value, "name") and not isinstance(value, str):
        return str(value.name)
    return str(value)


def _is_authenticated(request: Any) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and getattr(user, "is_authenticated", False))


def self_user(request: Any) -> list[str]:
    """The request's username, or nothing when anonymous (never a shared channel for anonymous users)."""
    return [str(request.user.get_username())] if _is_authenticated(request) else []


def self_groups(request: Any) -> list[str]:
    """The request's group names as cached in the session at login (no database query)."""
    if not _is_authenticated(request):
        return []
    session = getattr(request, "session", None)
    return [str(g) for g in (session.get(MEMBEROF_KEY, []) if session is not None else [])]


def self_session(request: Any) -> list[str]:
    """The request's session key, or nothing when there is no saved session."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) if session is not None else None
    return [key] if key else []


def channel_names(
    *,
    prefix: str | None,
    facility: str,
    request: Any = None,
    broadcast: bool = False,
    users: Any = (),
    groups: Any = (),
    sessions: Any = (),
) -> list[str]:
    """The channel names of an audience on one facility, in the original's format and order.

    The same string is the pub/sub channel and the key of the kept last message.
    """
    head = prefix_of(prefix)
    names: list[str] = []
    if broadcast is True:
        names.append(f"{head}broadcast:{facility}")
    names.extend(f"{head}group:{g}:{facility}" for g in _names(groups, request, self_groups, "groups"))
    names.extend(f"{head}user:{u}:{facility}" for u in _names(users, request, self_user, "users"))
    names.extend(f"{head}session:{s}:{facility}" for s in _names(sessions, request, self_session, "sessions"))
    return names


def subscription_channels(subscription: Subscription, *, prefix: str | None, request: Any, publish: bool) -> list[str]:
    """The channels a websocket listens to (``publish=False``) or publishes on (``publish=True``)."""
    audiences = subscription.publish if publish else subscription.subscribe
    return channel_names(
        prefix=prefix,
        facility=subscription.facility,
        request=request,
        broadcast="broadcast" in audiences,
        users=[SELF] if "user" in audiences else [],
        groups=[SELF] if "group" in audiences else [],
        sessions=[SELF] if "session" in audiences else [],
    )
