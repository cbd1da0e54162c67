"""Several facilities on one socket: what a v2 ``subscribe`` / ``unsubscribe`` may add or remove.

The original bound one facility per socket at the handshake (its issues #69, #162, #189); a page with three live
widgets opened three sockets. A ``ws4redis.v2`` client may now ask, over its open socket::

    {"type": "subscribe", "facility": "prices", "audiences": ["broadcast", "user"]}
    {"type": "unsubscribe", "facility": "chat"}                 # every audience of that facility

A subscription is authorised exactly as at connect (the secure default policy, then ``WS4REDIS_ALLOWED_CHANNELS``
with the same request), so switching facilities never grants what a new connection would not get. Only listening
changes: a socket publishes on the channels its URL's ``publish-*`` flags gave it. Decisions here; the connection
does the hub attach/detach in its own greenlet.
"""

from __future__ import annotations

from typing import Any

from ws4redis import settings
from ws4redis.audience import AUDIENCES, Subscription, self_groups, subscription_channels, validate_facility
from ws4redis.exceptions import ChannelRefused

__all__ = ["authorise_subscribe", "channels_to_drop"]


def _audiences(requested: tuple[str, ...]) -> frozenset[str]:
    unknown = [a for a in requested if a not in AUDIENCES]
    if unknown:
        raise ChannelRefused(f"unknown audience {unknown[0]!r} (one of {', '.join(AUDIENCES)})")
    return frozenset(requested)


def authorise_subscribe(
    request: Any, facility: str, audiences: tuple[str, ...], *, echo: bool, listening: int
) -> tuple[frozenset[str], list[str]]:
    """The audiences granted and their channel names, or ``ChannelRefused`` with the reason the client is told.

    ``listening`` is how many channels the socket already has, for ``WS4REDIS_MAX_SUBSCRIPTIONS``.
    """
    from ws4redis.auth import _authorise  # the one policy, shared with the handshake

    validate_facility(facility, max_length=int(settings.get("WS4REDIS_MAX_FACILITY_LENGTH")))
    wanted = Subscription(facility, _audiences(audiences), frozenset(), echo)
    if not wanted.subscribe:
        raise ChannelRefused("subscribe needs at least one audience")
    granted = _authorise(request, wanted)  # may narrow (WS4REDIS_ALLOWED_CHANNELS) or raise ChannelRefused
    if not granted.subscribe:
        asked = ", ".join(f"subscribe-{a}" for a in sorted(wanted.subscribe))
        raise ChannelRefused(f"WS4REDIS_ALLOWED_CHANNELS allows none of {asked} on {facility!r}")
    channels = subscription_channels(granted, prefix=settings.get("WS4REDIS_PREFIX"), request=request, publish=False)
    # As at connect, a user in no group may ask for ``group`` and gets no channel (group names are cached in the
    # session at login): not a refusal; the answer names only the audiences that listen to something.
    listened = frozenset(a for a in granted.subscribe if a != "group" or self_groups(request))
    if "WS4REDIS_MAX_SUBSCRIPTIONS" in settings.DEFAULTS:
        limit = settings.get("WS4REDIS_MAX_SUBSCRIPTIONS")
        if limit is not None and listening + len(channels) > int(limit):
            raise ChannelRefused(f"at most {limit} channels per socket (WS4REDIS_MAX_SUBSCRIPTIONS)")
    return listened, channels


def channels_to_drop(request: Any, facility: str, audiences: tuple[str, ...]) -> list[str]:
    """The channel names an ``unsubscribe`` names (every audience when ``audiences`` is empty)."""
    validate_facility(facility, max_length=int(settings.get("WS4REDIS_MAX_FACILITY_LENGTH")))
    chosen = _audiences(audiences) if audiences else frozenset(AUDIENCES)
    wanted = Subscription(facility, chosen, frozenset())
    return subscription_channels(wanted, prefix=settings.get("WS4REDIS_PREFIX"), request=request, publish=False)
