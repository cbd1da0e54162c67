"""Answers before the upgrade: a refused websocket and a plain HTTP request under ``WEBSOCKET_URL``.

A refused websocket keeps its HTTP status (400, 403, 404, 426, 429, 503...) and its one-line body where the server
implements the ASGI websocket denial response (the ``websocket.http.response`` extension: uvicorn, hypercorn). Where it
does not (daphne), the only refusal ASGI offers is a ``websocket.close`` before the accept, which the server answers
with 403: the status degrades to 403, the log line keeps the real one. ``docs/servers.md`` lists each server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from ws4redis import metrics

__all__ = ["DENIAL_EXTENSION", "answer_http", "deny"]

logger = logging.getLogger("ws4redis.asgi.refusal")  # its name before the move: logging configurations keep it

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DENIAL_EXTENSION = "websocket.http.response"


def _response_headers(body: bytes, headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]


async def deny(
    scope: Mapping[str, Any], send: Send, status: int, detail: str, headers: list[tuple[str, str]] | None = None
) -> None:
    """Refuse a websocket scope before the accept: ``status`` where the server allows it, else its 403."""
    metrics.REFUSED.labels(str(status)).inc()  # the refusal's own status, whatever the server can put on the wire
    logger.info("ws4redis: refused %s: %d %s", scope.get("path"), status, detail)
    if DENIAL_EXTENSION in (scope.get("extensions") or {}):
        body = (detail + "\n").encode()
        await send({
            "type": "websocket.http.response.start",
            "status": status,
            "headers": _response_headers(body, headers or []),
        })
        await send({"type": "websocket.http.response.body", "body": body})
        return
    # ASGI: a close before the accept is an HTTP 403 from the server; the code is not sent to anyone.
    await send({"type": "websocket.close", "code": 1008})


async def answer_http(send: Send, status: int, detail: str, headers: list[tuple[str, str]] | None = None) -> None:
    """An ordinary HTTP response with a one-line body, as ``ws4redis.servers.application.refuse`` writes it on WSGI (the
    server writes the reason phrase)."""
    body = (detail + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": _response_headers(body, headers or [])})
    await send({"type": "http.response.body", "body": body})
