"""Connections per user, counted across every worker and instance in one Redis sorted set per user.

Each open socket is a member whose score is the time it must be refreshed by; a crashed worker's members therefore
expire by themselves instead of locking a user out. Acquiring is one atomic script, so two workers accepting the same
user at once cannot both take the last place.
"""

from __future__ import annotations

import time
import uuid

from ws4redis import settings
from ws4redis.broker.audience import prefix_of
from ws4redis.broker.redis_store import get_connection

__all__ = ["ConnectionQuota"]

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class ConnectionQuota:
    """One socket's place in its user's quota (``WS4REDIS_MAX_CONNECTIONS_PER_USER``)."""

    def __init__(self, username: str, limit: int) -> None:
        self.key = f"{prefix_of(settings.get('WS4REDIS_PREFIX'))}ws4redis:connections:{username}"
        self.member = uuid.uuid4().hex
        self.limit = limit
        self.ttl = max(30, int(float(settings.get("WS4REDIS_WAKE_INTERVAL")) * 3))

    def acquire(self) -> bool:
        """Take a place; ``False`` when the user already has ``limit`` live sockets."""
        now = time.time()
        script = get_connection().register_script(_ACQUIRE)
        return bool(script(keys=[self.key], args=[now, now + self.ttl, self.limit, self.member, self.ttl * 2]))

    def refresh(self) -> None:
        """Called on the socket's idle wake-ups, well within ``ttl``."""
        get_connection().zadd(self.key, {self.member: time.time() + self.ttl}, xx=True)

    def release(self) -> None:
        get_connection().zrem(self.key, self.member)
