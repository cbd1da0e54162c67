"""The asyncio driver's entry points: serve one accepted ASGI handshake, and reach or close the process's hub.

``ws4redis.servers.asgi`` calls these and nothing deeper: ``open_connection`` subscribes (confirmed by Redis) before
the upgrade and answers a refusal the server's way, ``serve`` then runs the socket, ``hub``/``close_hub`` are the
loop's asyncio hub and its teardown at the lifespan's shutdown. The socket itself is ``AsyncioConnection``
(``ws4redis.runtime.asyncio.connection``); the loop's writer of idle sockets is ``runtime.asyncio.writer``, the ASGI
message shapes and the close are ``runtime.asyncio.frames``, where blocking code runs is ``runtime.asyncio.threads``,
the kept messages read at open are ``runtime.asyncio.kept``. ``AsyncioConnection``, ``asgi_frame`` and ``send_close``
stay importable from here for code outside the package; inside it, import them from their own modules.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis

from ws4redis.runtime.asyncio import redis_client as aioredis
from ws4redis.runtime.asyncio.connection import AsyncioConnection
from ws4redis.runtime.asyncio.frames import Receive, Send, asgi_frame, send_close
from ws4redis.runtime.subscriptions import HubUnavailable

__all__ = ["AsyncioConnection", "asgi_frame", "close_hub", "hub", "open_connection", "send_close", "serve"]

# its name before the move: logging configurations keep it
logger = logging.getLogger("ws4redis.runtime.asyncio_driver")

# answers a refusal before the upgrade: (scope, send, status, detail, headers)
Deny = Callable[[Mapping[str, Any], Send, int, str, Any], Awaitable[None]]


def hub() -> Any:
    """This process's asyncio hub (one Redis pub/sub connection per process and loop)."""
    from ws4redis.runtime.asyncio.hub import get_asyncio_hub

    return get_asyncio_hub()


async def close_hub() -> None:
    """Close the hub and the loop's Redis client at the lifespan's shutdown, if they were made."""
    from ws4redis.runtime.asyncio.hub import reset_asyncio_hub

    await reset_asyncio_hub()
    await aioredis.close()


async def open_connection(
    handshake: Any, scope: Mapping[str, Any], receive: Receive, send: Send, deny: Deny
) -> AsyncioConnection | None:
    """Subscribe (confirmed) before the upgrade: the ``AsyncioConnection`` to ``run``, or ``None`` once refused
    (``deny`` answers the refusal the server's way: ``ws4redis.servers.asgi.refusal.deny``).

    The caller lets go of ``handshake`` before it runs the connection: a frame that holds it for the socket's life
    keeps the Django request and its WSGI environ (~2 KB per idle socket, bench/), which the connection itself drops
    once the socket is open."""
    from ws4redis.exceptions import HandshakeRefused

    connection = AsyncioConnection(handshake, receive, send, hub())
    try:
        await connection.open()
    except HandshakeRefused as refusal:
        await deny(scope, send, refusal.status, refusal.detail, refusal.headers)
        return None
    except (HubUnavailable, redis.RedisError, OSError) as exc:  # the quota's Redis too: come back later
        logger.error("ws4redis: %s", exc)
        await deny(scope, send, 503, "message broker unavailable", [("Retry-After", "5")])
        return None
    return connection


async def serve(handshake: Any, scope: Mapping[str, Any], receive: Receive, send: Send, deny: Deny) -> None:
    """Serve one accepted handshake: ``open_connection``, then run the socket (a caller that keeps its own reference
    to ``handshake`` while this runs keeps the request alive: see there)."""
    connection = await open_connection(handshake, scope, receive, send, deny)
    del handshake
    if connection is not None:
        await connection.run()
