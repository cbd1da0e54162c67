"""Per-connection limits as pure values: the publish rate's token bucket and the slow-consumer queue policy.

Kept apart from the connection loop so they are tested without servers; every refusal they lead to is a documented
close code, counted and logged by the caller.
"""

from __future__ import annotations

import dataclasses

__all__ = ["SLOW_CONSUMER_POLICIES", "TokenBucket"]

SLOW_CONSUMER_POLICIES = ("close", "drop-oldest")


@dataclasses.dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``take(now)`` spends one if there is one.

    A client may send a short burst (a paste, a reconnect) but not a sustained flood.
    """

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:  # first use: start full
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def full(self, now: float) -> bool:
        """Whether ``take`` would find the bucket full at ``now``: a new bucket is then the same (it starts full),
        so the owner may let this one go."""
        return self.tokens < 0 or self.tokens + (now - self.stamp) * self.rate >= self.burst
