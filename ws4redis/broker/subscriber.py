"""``RedisSubscriber``: which channels one websocket listens to and publishes on.

Replaceable through ``WS4REDIS_SUBSCRIBER`` as in the original. Unlike the original it holds no Redis pub/sub
connection of its own: the worker's hub subscribes on its behalf, so a worker needs one pub/sub connection however
many sockets it serves.
"""

from __future__ import annotations

from typing import Any

from ws4redis import settings
from ws4redis.broker.audience import PUBLISH_FLAGS, SUBSCRIBE_FLAGS, parse_flags, subscription_channels
from ws4redis.broker.redis_store import RedisStore

__all__ = ["RedisSubscriber"]


class RedisSubscriber(RedisStore):
    """Channels of one websocket, computed once at the handshake from its request and agreed flags."""

    subscription_channels = list(SUBSCRIBE_FLAGS)
    publish_channels = list(PUBLISH_FLAGS)

    def __init__(self, connection: Any = None) -> None:
        super().__init__(connection)
        self._subscriptions: list[str] = []

    @property
    def channels(self) -> list[str]:
        """The channels this websocket listens to."""
        return list(self._subscriptions)

    @property
    def publishers(self) -> list[str]:
        """The channels a message from this websocket is published on."""
        return sorted(self._publishers)

    def set_pubsub_channels(self, request: Any, channels: list[str]) -> None:
        """Compute both channel lists for ``request`` and the agreed flags (``['subscribe-user', ...]``)."""
        prefix = str(settings.get("WEBSOCKET_URL"))
        path = request.path_info
        facility = path[len(prefix) :] if path.startswith(prefix) else path
        subscription = parse_flags(facility, "&".join(channels))
        redis_prefix = settings.get("WS4REDIS_PREFIX")
        self._publishers = set(subscription_channels(subscription, prefix=redis_prefix, request=request, publish=True))
        self._subscriptions = subscription_channels(subscription, prefix=redis_prefix, request=request, publish=False)

    def channel_connected(self, channel: str, request: Any) -> None:
        """Hook for subclasses, called for each channel just before its kept message is sent."""

    def get_persisted_messages(self) -> list[tuple[str, bytes]]:
        """The kept last message of each listened channel, in one round trip (``WS4REDIS_EXPIRE``)."""
        if not self._subscriptions or not settings.get("WS4REDIS_EXPIRE"):
            return []
        values: list[bytes | None] = self._connection.mget(self._subscriptions)  # type: ignore[assignment]
        return [(channel, value) for channel, value in zip(self._subscriptions, values, strict=True) if value]

    def send_persisted_messages(self, websocket: Any, request: Any = None) -> None:
        """The original's way to send the kept messages: ``websocket.send(message)`` for each, after
        ``channel_connected``. ws4redis's connection loop uses ``get_persisted_messages`` instead."""
        for channel, message in self.get_persisted_messages():
            self.channel_connected(channel, request)
            websocket.send(message)

    def send_persited_messages(self, websocket: Any) -> None:
        """The original's misspelt name of ``send_persisted_messages``, kept for callers written against it."""
        self.send_persisted_messages(websocket)

    def release(self) -> None:
        """Kept for subclasses written for the original; the hub releases subscriptions."""
