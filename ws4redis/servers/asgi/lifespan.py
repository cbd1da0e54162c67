"""The ASGI lifespan protocol: the project is loaded and checked at startup, the Redis hub closed at shutdown.

A broken setting then stops the server at startup (``lifespan.startup.failed`` with the list of what is wrong), as
``need-app`` stops uWSGI, instead of a server that answers every websocket with an error. Servers that run no
lifespan (``--lifespan off``) get the same load and checks on their first request.

Django's own ASGI handler refuses lifespan scopes, so ``get_asgi_application()`` answers them here for both.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["serve_lifespan"]

logger = logging.getLogger("ws4redis.asgi.lifespan")  # its name before the move: logging configurations keep it

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def serve_lifespan(
    receive: Receive, send: Send, *, startup: Callable[[], Awaitable[None]], shutdown: Callable[[], Awaitable[None]]
) -> None:
    """Run ``startup`` and ``shutdown`` when the server says so; a failed startup is reported, never raised."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as exc:  # the server prints the message and exits: no half-started worker
                logger.error("ws4redis: startup failed: %s", exc)
                await send({"type": "lifespan.startup.failed", "message": f"ws4redis: {exc}"})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await shutdown()
            except Exception as exc:
                logger.exception("ws4redis: shutdown failed")
                await send({"type": "lifespan.shutdown.failed", "message": f"ws4redis: {exc}"})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return
