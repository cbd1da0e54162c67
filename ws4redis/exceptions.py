"""Every error ws4redis raises, and the codes it answers with.

The tree::

    Ws4RedisError
     +-- HandshakeRefused            a websocket request refused before the upgrade (carries the HTTP status)
     |    +-- BadHandshake           400: not a websocket upgrade, or a malformed one
     |    +-- ForbiddenOrigin        403: the Origin is not allowed (cross-site websocket hijacking)
     |    +-- ChannelRefused         403: the policy refused a channel (also a Django ``PermissionDenied``)
     |    +-- UnknownFacility        404: the facility name is not valid
     |    +-- UnsupportedVersion     426: not RFC 6455 version 13
     |    +-- TooManyConnections     429: the user already has WS4REDIS_MAX_CONNECTIONS_PER_USER open sockets
     +-- ConnectionClosed            the peer went away or the transport failed (ends a connection loop)

Close codes sent after the upgrade are ``CloseCode`` (on both transports); a ``ws4redis.v2`` client also gets the
same information as a control message before the socket is closed.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from ws4redis.core.codes import CloseCode  # decided by the pure session core; imported from here since 0.1

__all__ = [
    "BadHandshake",
    "ChannelRefused",
    "CloseCode",
    "ConnectionClosed",
    "ForbiddenOrigin",
    "FrameTooLargeException",
    "HandshakeError",
    "HandshakeRefused",
    "TooManyConnections",
    "UnknownFacility",
    "UnsupportedVersion",
    "UpgradeRequiredError",
    "WebSocketError",
    "Ws4RedisError",
]


class Ws4RedisError(Exception):
    """Root of every ws4redis exception."""


class HandshakeRefused(Ws4RedisError):
    """A websocket request refused before the upgrade; ``status`` is the HTTP answer."""

    status: int = 400
    reason: str = "Bad Request"

    def __init__(self, detail: str = "", *, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason
        self.headers = headers or []


class BadHandshake(HandshakeRefused):
    status, reason = 400, "Bad Request"


class ForbiddenOrigin(HandshakeRefused):
    status, reason = 403, "Forbidden"


class ChannelRefused(HandshakeRefused, PermissionDenied):
    status, reason = 403, "Forbidden"


class UnknownFacility(HandshakeRefused):
    status, reason = 404, "Not Found"


class UnsupportedVersion(HandshakeRefused):
    status, reason = 426, "Upgrade Required"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, headers=[("Sec-WebSocket-Version", "13")])


class TooManyConnections(HandshakeRefused):
    status, reason = 429, "Too Many Requests"


class ConnectionClosed(Ws4RedisError):
    """The websocket ended: the peer closed it, the link died, or the server closes it with ``code``."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


# The original's names (django-websocket-redis 0.6), so that code importing or catching them still works: each is
# the ws4redis exception raised in the same situation.
HandshakeError = HandshakeRefused  #: a request refused before the upgrade (0.6: a malformed handshake)
UpgradeRequiredError = UnsupportedVersion  #: 426, the websocket version is missing or unsupported
WebSocketError = ConnectionClosed  #: a websocket that ended or failed after the upgrade
FrameTooLargeException = ConnectionClosed  #: a message over the size limit ends the websocket (close code 1009)
