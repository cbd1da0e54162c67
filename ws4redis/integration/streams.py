"""Signed streams: a page about one object subscribes to a facility named after it, and knowing the name is not enough.

A facility matching a pattern of ``WS4REDIS_SIGNED_STREAMS`` (``["incident-*"]``) is accepted only with a ``sig``
query parameter that ``sign_stream`` made (the template tags add it with ``signed=True``): Django's signing with the
project's ``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS``, so keys can be rotated), salted so no other signature of the
project can stand in for it, optionally expiring. Without a valid one the handshake is refused with 403 before the
upgrade; clients may never publish to such a facility (a viewer could otherwise push markup into every other
viewer's page).

The token is ``<expiry>:<signature>``: the expiry (Unix seconds in base 62, ``0`` for never) is signed together with
the facility name, so neither can be changed without the key.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from django.core import signing
from django.core.exceptions import ImproperlyConfigured

from ws4redis import settings
from ws4redis.broker.audience import Subscription
from ws4redis.exceptions import ChannelRefused

__all__ = ["SALT", "check_signed_stream", "is_signed", "sign_stream", "verify_stream"]

SALT = "ws4redis.streams.signed-facility"  # unchanged by the move: signatures made before stay valid
NEVER = "0"


def is_signed(facility: str) -> bool:
    """Whether ``facility`` matches ``WS4REDIS_SIGNED_STREAMS`` (an exact name or an ``fnmatch`` pattern)."""
    patterns = settings.get("WS4REDIS_SIGNED_STREAMS") or ()
    if isinstance(patterns, str):
        raise ImproperlyConfigured("WS4REDIS_SIGNED_STREAMS must be a list of facility names or patterns")
    return any(fnmatch.fnmatchcase(facility, str(pattern)) for pattern in patterns)


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def sign_stream(facility: str, *, expires_in: float | None = None, now: float | None = None) -> str:
    """The ``sig`` token allowing a subscription to ``facility`` (for ``expires_in`` seconds; ``None``: no expiry).

    Raises ``ImproperlyConfigured`` when the server would not ask for it (``WS4REDIS_SIGNED_STREAMS`` does not cover
    ``facility``): a signature nobody checks would only look like protection.
    """
    if not is_signed(facility):
        raise ImproperlyConfigured(
            f"facility {facility!r} is signed but WS4REDIS_SIGNED_STREAMS does not cover it: the server would "
            "accept it without a signature"
        )
    if expires_in is None:
        expiry = NEVER
    else:
        expiry = signing.b62_encode(int((time.time() if now is None else now) + float(expires_in)))
    signed = _signer().sign(f"{facility}:{expiry}")
    return signed[len(facility) + 1 :]  # the facility is in the URL's path already


def verify_stream(facility: str, token: str, *, now: float | None = None) -> None:
    """Raise ``ChannelRefused`` (403) unless ``token`` is a valid, unexpired signature of ``facility``."""
    expiry, sep, _signature = token.partition(":")
    if not sep or not expiry or len(token) > 200:
        raise ChannelRefused("malformed stream signature")
    try:
        _signer().unsign(f"{facility}:{token}")
    except signing.BadSignature:
        raise ChannelRefused("invalid stream signature") from None
    if expiry != NEVER and signing.b62_decode(expiry) < (time.time() if now is None else now):
        raise ChannelRefused("stream signature expired")


def check_signed_stream(request: Any, subscription: Subscription) -> None:
    """The handshake's check (``ws4redis.integration.auth``): a signed facility needs a valid ``sig`` and no publish
    flag."""
    if not is_signed(subscription.facility):
        return
    if subscription.publish:
        raise ChannelRefused(f"clients may not publish to the signed stream {subscription.facility!r}")
    token = request.GET.get("sig") if request is not None else None
    if not token:
        raise ChannelRefused(f"the signed stream {subscription.facility!r} needs a signature (sig=)")
    verify_stream(subscription.facility, token)
