"""``Delivery``: one message from Redis as every local socket receives it (a value the hubs make, the sessions queue).

Pure: the gevent hub, the asyncio hub and the sessions share it, and ``ws4redis.runtime.gevent.hub`` re-exports it.
"""

from __future__ import annotations

import time
from typing import Any

from ws4redis.core.wire import is_text

__all__ = ["Delivery", "is_text"]


class Delivery:
    """One message from Redis, shared by every socket it goes to, so per-message work is done once, not per socket.

    ``cache`` holds its encodings per wire protocol (``WireProtocol.wire_key``), filled by the first socket that
    needs one; ``pending`` counts the local sockets yet to be done with it (``ws4redis.metrics.done``).
    """

    __slots__ = ("cache", "channel", "data", "event", "id", "pending", "received", "text")

    def __init__(self, channel: str, data: bytes, text: bool, id: str | None = None, event: bool = False) -> None:
        self.channel = channel
        self.data = data
        self.text = text
        self.id = id  # stream id where the channel keeps history (ws4redis.broker.history), else None
        self.event = event  # a v2 control event (join/leave; ``data`` is its JSON), never shown to legacy clients
        self.received = time.monotonic()  # start of ws4redis' part of the publish-to-deliver latency (metrics)
        self.cache: dict[str, Any] = {}  # encodings per wire protocol, filled by the first socket that needs one
        self.pending = 0  # local sockets yet to write it; the last one records the fan-out latency (metrics)
