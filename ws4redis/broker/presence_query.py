"""Who is listening, in one round trip: ``count``, ``users`` and ``offline`` (re-exported by
``ws4redis.broker.presence``).

Without ``audience`` the answer is about the whole facility (every socket of it, on any of its channels, from the
per-facility sets of ``ws4redis.broker.presence_signals``, judged by Redis's own clock); with ``audience`` (and
``name``)
about the one channel, from ``ws4redis.broker.presence``'s set of that channel. Entries of a worker that died are not
counted once their ``ttl`` is over, even before a sweep removes them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis

from ws4redis import settings
from ws4redis.broker.audience import channel_names
from ws4redis.broker.presence_signals import facility_keys

__all__ = ["count", "offline", "users"]

_AUDIENCES = ("broadcast", "user", "group", "session")

# KEYS: one sorted set. Its live members (score: expiry, on Redis's clock).
_LIVE = """
local t = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000, '+inf')
"""

# KEYS: sorted sets. How many live members each has.
_COUNTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('ZCOUNT', key, now, '+inf') end
return out
"""


def _client(connection: redis.Redis | None) -> Any:
    """The connection to use (``Any``: redis-py leaves ``execute_command`` untyped)."""
    if connection is not None:
        return connection
    from ws4redis.broker.redis_store import get_connection

    return get_connection()


def _channel_key(facility: str, audience: str, name: str | None) -> str:
    from ws4redis.broker.presence import presence_key

    if audience not in _AUDIENCES:
        raise ValueError(f"audience must be one of {_AUDIENCES}, not {audience!r}")
    if audience != "broadcast" and not name:
        raise ValueError(f"audience {audience!r} needs a name")
    kwargs = {"broadcast": True} if audience == "broadcast" else {f"{audience}s": [name]}
    (channel,) = channel_names(prefix=settings.get("WS4REDIS_PREFIX"), facility=facility, **kwargs)
    return presence_key(channel)


def _require_presence(facility: str) -> None:
    if settings.for_channel("WS4REDIS_PRESENCE", facility) is None:
        raise ValueError(f"facility {facility!r} has no WS4REDIS_PRESENCE entry: nobody is tracked there")


def count(
    facility: str, audience: str | None = None, name: str | None = None, *, connection: redis.Redis | None = None
) -> int:
    """How many sockets are connected to ``facility`` (or to its ``audience`` channel): one round trip."""
    _require_presence(facility)
    client = _client(connection)
    if audience is None:
        (found,) = client.execute_command("EVAL", _COUNTS, 1, facility_keys(facility)[0])
        return int(found)
    return int(client.zcount(_channel_key(facility, audience, name), time.time(), "+inf"))


def users(
    facility: str, audience: str | None = None, name: str | None = None, *, connection: redis.Redis | None = None
) -> list[str]:
    """The usernames with a socket on ``facility`` (or its ``audience`` channel), sorted: one round trip.

    Anonymous sockets are counted by ``count`` and listed by ``ws4redis.broker.presence.presence``, not here.
    """
    import json

    _require_presence(facility)
    client = _client(connection)
    found: set[str] = set()
    if audience is None:
        for raw in client.execute_command("EVAL", _LIVE, 1, facility_keys(facility)[0]):
            who = raw.decode().partition(" ")[2]
            if who.startswith("u:"):
                found.add(who[2:])
        return sorted(found)
    for raw in client.zrangebyscore(_channel_key(facility, audience, name), time.time(), "+inf"):
        try:
            user = json.loads(raw).get("u")
        except (ValueError, AttributeError):
            continue
        if isinstance(user, str) and user:
            found.add(user)
    return sorted(found)


def offline(facility: str, usernames: Iterable[str], *, connection: redis.Redis | None = None) -> list[str]:
    """Those of ``usernames`` with no live socket on ``facility`` now, in the given order: one round trip.

    "Now" is not the grace period: a user who closed their last tab a second ago is offline here, while their
    ``user_offline`` signal waits for ``WS4REDIS_PRESENCE_GRACE``.
    """
    _require_presence(facility)
    names = list(dict.fromkeys(usernames))
    if not names:
        return []
    prefix = facility_keys(facility)[3]
    counts = _client(connection).execute_command("EVAL", _COUNTS, len(names), *(f"{prefix}u:{n}" for n in names))
    return [name for name, live in zip(names, counts, strict=True) if int(live) == 0]
