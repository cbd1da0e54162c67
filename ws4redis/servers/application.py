"""The websocket WSGI application: handshake checks, then the connection loop on a transport.

A refusal is an ordinary HTTP response before the upgrade (400, 403, 404, 426, or 503 when Redis cannot confirm
the subscription); after the upgrade the connection loop owns the socket until it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ws4redis import metrics
from ws4redis.exceptions import HandshakeRefused
from ws4redis.integration.auth import Handshake, handshake
from ws4redis.integration.hooks import connect_or_refuse
from ws4redis.runtime.gevent import handshakes
from ws4redis.runtime.gevent.connection import Connection
from ws4redis.runtime.gevent.hub import HubUnavailable, get_hub
from ws4redis.runtime.gevent.transport import Transport
from ws4redis.servers.websocket_views import serve_view, view_for

__all__ = ["WebsocketApplication", "refuse"]

logger = logging.getLogger("ws4redis.application")  # its name before the move: logging configurations keep it

StartResponse = Callable[..., Any]
TransportFactory = Callable[[dict[str, Any], Handshake], Transport]


def refuse(
    start_response: StartResponse, status: int, reason: str, detail: str, headers: list[tuple[str, str]]
) -> list[bytes]:
    """Answer a websocket request with an HTTP error and a one-line explanation."""
    metrics.REFUSED.labels(str(status)).inc()
    body = (detail + "\n").encode()
    start_response(
        f"{status} {reason}",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def _accept(environ: dict[str, Any]) -> Handshake:
    """Check and authorise the request, then run the connect hook (``WS4REDIS_HOOKS``), which may refuse it."""
    accepted = handshake(environ)
    connect_or_refuse(accepted)
    return accepted


class WebsocketApplication:
    """A WSGI application serving websockets on one transport (``transport_factory(environ, handshake)``)."""

    def __init__(self, transport_factory: TransportFactory) -> None:
        from ws4redis.integration.checks import raise_if_invalid

        raise_if_invalid()  # a broken setting stops the server here, not as odd behaviour at the first socket
        self.transport_factory = transport_factory

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # a websocket view routed by the urlconf (ws4redis.integration.decorators), else no-code
        view = view_for(environ)
        if view is not None:
            return serve_view(view, environ, start_response, self.transport_factory)
        try:
            # The Django part, in one of the worker's few handshake greenlets: their database connections are
            # reused (CONN_MAX_AGE) and bounded (WS4REDIS_HANDSHAKE_CONCURRENCY), whatever the number of requests.
            accepted = handshakes.run(_accept, environ)
        except HandshakeRefused as refusal:
            logger.info("ws4redis: refused %s: %d %s", environ.get("PATH_INFO"), refusal.status, refusal.detail)
            return refuse(start_response, refusal.status, refusal.reason, refusal.detail, refusal.headers)
        connection = Connection(self.transport_factory(environ, accepted), accepted, get_hub())
        try:
            connection.open()
        except HandshakeRefused as refusal:
            logger.info("ws4redis: refused %s: %d %s", environ.get("PATH_INFO"), refusal.status, refusal.detail)
            return refuse(start_response, refusal.status, refusal.reason, refusal.detail, refusal.headers)
        except HubUnavailable as exc:
            logger.error("ws4redis: %s", exc)
            retry = [("Retry-After", "5")]
            return refuse(start_response, 503, "Service Unavailable", "message broker unavailable", retry)
        connection.run()
        return []
