"""The ASGI side of a websocket: the shapes of ASGI ``websocket.send`` messages, and the close.

Apart from the connection so that every asyncio socket speaks ASGI the same way: the driver's connections and the
websocket views' sockets (``ws4redis.servers.asgi.views``) send frames with ``asgi_frame`` and close with
``send_close``, which knows which servers refuse which close codes. ``asgi_send`` makes a delivery's payload once per
wire protocol and shares it between the sockets (an immutable str or bytes in ``Delivery.cache``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ws4redis.core import CloseCode, Delivery, Session

__all__ = ["Receive", "Send", "asgi_frame", "asgi_key", "asgi_send", "send_close"]

# the driver's name before the split: logging configurations keep it
logger = logging.getLogger("ws4redis.runtime.asyncio_driver")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def asgi_frame(data: bytes, text: bool) -> dict[str, Any]:
    """The ASGI ``websocket.send`` message of one frame: text as ``str``, else (or when not UTF-8) bytes."""
    if text:
        try:
            return {"type": "websocket.send", "text": data.decode()}
        except UnicodeDecodeError:
            pass  # not UTF-8 after all: binary rather than an invalid text frame
    return {"type": "websocket.send", "bytes": data}


async def send_close(send: Send, code: int, reason: str, *, label: str) -> None:
    """Close with ``code``. A plain int: daphne (through autobahn) refuses an IntEnum, and any code but 1000 and
    3000-4999 (RFC 6455's codes for applications); there the close goes out as 1000, after the v2 notice that says
    why. A client that is gone already is not an error."""
    for attempt in (int(code), int(CloseCode.NORMAL)):
        try:
            await asyncio.wait_for(send({"type": "websocket.close", "code": attempt, "reason": reason}), 5)
            return
        except (OSError, RuntimeError, TimeoutError) as exc:
            logger.debug("ws4redis: closing the websocket of %s: %r", label, exc)
            return
        except Exception as exc:
            if attempt == CloseCode.NORMAL:
                logger.warning("ws4redis: the server could not close the websocket of %s: %r", label, exc)
                return
            logger.debug("ws4redis: the server refused close code %d (%r); closing with 1000", attempt, exc)


_ASGI_KEYS: dict[str, str] = {}


def asgi_key(wire_key: str) -> str:
    """The ``Delivery.cache`` key of a protocol's ASGI payload: one shared string per protocol, not one per socket."""
    key = _ASGI_KEYS.get(wire_key)
    if key is None:
        key = _ASGI_KEYS[wire_key] = "asgi:" + wire_key
    return key


def asgi_send(delivery: Delivery, session: Session, key: str) -> dict[str, Any]:
    """The ``websocket.send`` message of ``delivery`` for ``session``'s wire protocol (``key``: its cache key): the
    payload is made and decoded once per delivery and protocol (an immutable str or bytes in ``Delivery.cache``),
    only the dict once per send (uvicorn does not keep it, but a dict is not shared between sockets)."""
    cached: tuple[str, Any] | None = delivery.cache.get(key)
    if cached is None:
        message = asgi_frame(*session.frame(delivery))
        cached = delivery.cache[key] = ("text", message["text"]) if "text" in message else ("bytes", message["bytes"])
    return {"type": "websocket.send", cached[0]: cached[1]}
