"""The kept last messages (``WS4REDIS_EXPIRE``) an asyncio socket is sent when it opens.

Apart from the connection because there are two ways to read them: on the loop's redis.asyncio client, as the gevent
side reads them, or, when ``WS4REDIS_SUBSCRIBER`` overrides how they are read, through the project's subscriber in a
worker thread (its code is blocking).
"""

from __future__ import annotations

from typing import Any

from ws4redis import settings
from ws4redis.runtime.asyncio import redis_client as aioredis
from ws4redis.runtime.asyncio.threads import in_thread

__all__ = ["kept_messages"]


async def kept_messages(handshake: Any) -> list[tuple[str, bytes]]:
    """The kept last messages of the handshake's channels (``WS4REDIS_EXPIRE``), as the gevent side reads them: on
    the loop's client, unless ``WS4REDIS_SUBSCRIBER`` overrides how they are read (its code then runs in a thread)."""
    from ws4redis.broker.subscriber import RedisSubscriber

    subscriber = handshake.subscriber
    kind = type(subscriber)
    if (kind.get_persisted_messages is not RedisSubscriber.get_persisted_messages
            or kind.channel_connected is not RedisSubscriber.channel_connected):
        return await in_thread(_kept_by_subscriber, handshake)
    channels = subscriber.channels
    if not channels or not settings.get("WS4REDIS_EXPIRE"):
        return []
    values = await aioredis.kept(channels)
    return [(channel, value) for channel, value in zip(channels, values, strict=True) if value]


def _kept_by_subscriber(handshake: Any) -> list[tuple[str, bytes]]:
    subscriber = handshake.subscriber
    kept = []
    for channel, data in subscriber.get_persisted_messages():
        subscriber.channel_connected(channel, handshake.request)
        kept.append((channel, data))
    return kept
