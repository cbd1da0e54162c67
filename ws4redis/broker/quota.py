"""Connections per user, counted across every worker and instance in one Redis sorted set per user.

Each open socket is a member whose score is the time it must be refreshed by; a crashed worker's members therefore
expire by themselves instead of locking a user out. Acquiring is one atomic script, so two workers accepting the same
user at once cannot both take the last place.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ws4redis import settings
from ws4redis.broker.audience import prefix_of
from ws4redis.broker.redis_batch import Batch, run
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
        return run(get_connection(), self.acquire_batch())

    def refresh(self) -> None:
        """Called on the socket's idle wake-ups, well within ``ttl``."""
        run(get_connection(), self.refresh_batch())

    def release(self) -> None:
        run(get_connection(), self.release_batch())

    # -- the same steps as ``Batch``es, for either client (``ws4redis.broker.redis_batch``) ----------------------------
    def acquire_batch(self) -> Batch[bool]:
        def send(client: Any) -> Any:
            now = time.time()
            # EVAL: no NOSCRIPT to recover from after a Redis restart (Redis caches the script by its hash itself).
            return client.execute_command(
                "EVAL", _ACQUIRE, 1, self.key, now, now + self.ttl, self.limit, self.member, self.ttl * 2
            )

        return Batch(send, _first_true, single=True)

    def refresh_batch(self) -> Batch[None]:
        return Batch(lambda client: client.zadd(self.key, {self.member: time.time() + self.ttl}, xx=True), _ignore,
                     single=True)

    def release_batch(self) -> Batch[None]:
        return Batch(lambda client: client.zrem(self.key, self.member), _ignore, single=True)


def _first_true(replies: list[Any]) -> bool:
    return bool(replies[0])


def _ignore(replies: list[Any]) -> None:
    """Nothing in the reply matters (a refresh of an entry that expired adds nothing: ``XX``)."""
