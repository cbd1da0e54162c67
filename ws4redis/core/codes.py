"""Close codes: RFC 6455's and the 4000-4999 range ws4redis documents for its own decisions.

Here, in the pure core, because the session decides them; ``ws4redis.exceptions.CloseCode`` re-exports this.
"""

from __future__ import annotations

import enum

__all__ = ["CloseCode"]


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455 and the 4000-4999 range ws4redis documents for its own refusals."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutdown or reload: reconnect after the suggested delay
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007  # invalid UTF-8 in a text frame
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SLOW_CONSUMER = 4008  # the client did not read fast enough; its queue exceeded the byte limit
    RATE_LIMITED = 4029  # the client published faster than its allowance
    REVOKED = 4003  # logout, session ended or user deactivated
