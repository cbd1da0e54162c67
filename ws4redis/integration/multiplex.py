"""Several facilities on one socket: what a v2 ``subscribe`` / ``unsubscribe`` may add or remove.

The original bound one facility per socket at the handshake (its issues #69, #162, #189); a page with three live
widgets opened three sockets. A ``ws4redis.v2`` client may now ask, over its open socket::

    {"type": "subscribe", "facility": "prices", "audiences": ["broadcast", "user"]}
    {"type": "unsubscribe", "facility": "chat"}                 # every audience of that facility

A subscription is authorised exactly as a connection to that facility: the secure default policy, then
``WS4REDIS_ALLOWED_CHANNELS``, then the facility's ``connect`` hook (``ws4redis.integration.hooks``), each given the
request *as
a connection to the subscribed facility would have made it* (``facility_request``: the socket's own user, session
and headers, with the path and query of ``/ws/<facility>?subscribe-...``). So a policy that reads ``request.path``
decides the same way for both, and switching facilities never grants what a new connection would not get. Only
listening changes: a socket publishes on the channels its URL's ``publish-*`` flags gave it. Decisions here; the
connection does the hub attach/detach in its own greenlet.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from typing import Any

from ws4redis import settings
from ws4redis.broker.audience import AUDIENCES, Subscription, self_groups, subscription_channels, validate_facility
from ws4redis.exceptions import ChannelRefused
from ws4redis.integration.hooks import FacilityHooks, hooks_for, run_connect_or_refuse

__all__ = ["Grant", "authorise_subscribe", "channels_to_drop", "facility_request"]


@dataclasses.dataclass(frozen=True)
class Grant:
    """An authorised run-time subscription: what was granted, its channels, and what the policy and hooks saw."""

    subscription: Subscription
    channels: tuple[str, ...]
    request: Any  # the request as facility_request made it: the disconnect hook gets the same one
    hooks: FacilityHooks
    audiences: frozenset[str]  # the granted audiences that listen to a channel (``group`` without groups does not)


def _audiences(requested: tuple[str, ...]) -> frozenset[str]:
    unknown = [a for a in requested if a not in AUDIENCES]
    if unknown:
        raise ChannelRefused(f"unknown audience {unknown[0]!r} (one of {', '.join(AUDIENCES)})")
    return frozenset(requested)


def facility_request(request: Any, subscription: Subscription) -> Any:
    """A shallow copy of the socket's handshake ``request`` as a connection to ``subscription`` would have made it.

    ``path``, ``path_info``, ``META['PATH_INFO']`` name ``WEBSOCKET_URL + facility`` and the query string (``GET``,
    ``META['QUERY_STRING']``) holds the requested flags; user, session, cookies and every other header are the
    socket's own. Without this a policy keyed on the path saw the facility the socket connected to, not the one it
    subscribes to (issue 19). The socket's own request is never changed.
    """
    from django.http import QueryDict
    from django.utils.functional import cached_property

    path_info = f"{settings.get('WEBSOCKET_URL')}{subscription.facility}"
    query = "&".join(subscription.flags + (["echo"] if subscription.echo else []))
    view = copy.copy(request)
    meta = getattr(request, "META", None)
    script = str(meta.get("SCRIPT_NAME", "")) if isinstance(meta, dict) else ""
    view.META = {**(meta if isinstance(meta, dict) else {}), "PATH_INFO": path_info, "QUERY_STRING": query}
    view.path_info = path_info
    view.path = f"{script.rstrip('/')}/{path_info.replace('/', '', 1)}"
    if isinstance(inspect.getattr_static(type(view), "GET", None), cached_property):
        # A WSGIRequest parses GET from its environ on first use: most policies never look, so it stays unparsed.
        view.environ = view.META
        view.__dict__.pop("GET", None)
    else:
        view.GET = QueryDict(query)
    return view


def authorise_subscribe(
    request: Any, facility: str, audiences: tuple[str, ...], *, echo: bool, listening: int
) -> Grant:
    """The audiences granted and their channel names, or ``ChannelRefused`` with the reason the client is told.

    ``listening`` is how many channels the socket already has, for ``WS4REDIS_MAX_SUBSCRIPTIONS``. The facility's
    connect hook runs last, as at a connection: its ``PermissionDenied`` is a refusal, its failure an "internal
    error" refusal (the socket stays open: it is the subscription that failed, as a connection would get 500).
    """
    from ws4redis.integration.auth import _authorise  # the one policy, shared with the handshake

    validate_facility(facility, max_length=int(settings.get("WS4REDIS_MAX_FACILITY_LENGTH")))
    wanted = Subscription(facility, _audiences(audiences), frozenset(), echo)
    if not wanted.subscribe:
        raise ChannelRefused("subscribe needs at least one audience")
    seen = facility_request(request, wanted)
    granted = _authorise(seen, wanted)  # may narrow (WS4REDIS_ALLOWED_CHANNELS) or raise ChannelRefused
    if not granted.subscribe:
        asked = ", ".join(f"subscribe-{a}" for a in sorted(wanted.subscribe))
        raise ChannelRefused(f"WS4REDIS_ALLOWED_CHANNELS allows none of {asked} on {facility!r}")
    channels = subscription_channels(granted, prefix=settings.get("WS4REDIS_PREFIX"), request=seen, publish=False)
    # As at connect, a user in no group may ask for ``group`` and gets no channel (group names are cached in the
    # session at login): not a refusal; the answer names only the audiences that listen to something.
    listened = frozenset(a for a in granted.subscribe if a != "group" or self_groups(seen))
    limit = settings.get("WS4REDIS_MAX_SUBSCRIPTIONS")
    if limit is not None and listening + len(channels) > int(limit):
        raise ChannelRefused(f"at most {limit} channels per socket (WS4REDIS_MAX_SUBSCRIPTIONS)")
    hooks = hooks_for(facility)
    run_connect_or_refuse(hooks, seen, granted)
    return Grant(granted, tuple(channels), seen, hooks, listened)


def channels_to_drop(request: Any, facility: str, audiences: tuple[str, ...]) -> list[str]:
    """The channel names an ``unsubscribe`` names (every audience when ``audiences`` is empty)."""
    validate_facility(facility, max_length=int(settings.get("WS4REDIS_MAX_FACILITY_LENGTH")))
    chosen = _audiences(audiences) if audiences else frozenset(AUDIENCES)
    wanted = Subscription(facility, chosen, frozenset())
    return subscription_channels(wanted, prefix=settings.get("WS4REDIS_PREFIX"), request=request, publish=False)
