"""``ws4redis.servers.asgi.application``: the websocket-only ASGI application (a websocket process of a split
deployment).

- a websocket under ``WEBSOCKET_URL``: the handshake of ``ws4redis.integration.auth`` (in Django's sync thread), then
  the asyncio
  driver (``ws4redis.runtime.asyncio.driver``) until the socket ends; a refusal is an HTTP status (``refusal.deny``);
  a path the urlconf routes to a websocket view runs that view in a thread of its own (``views``);
- a plain HTTP request under ``WEBSOCKET_URL``: 400, whose body says the client must upgrade, as on WSGI (a websocket
  view's path goes to Django, whose view answers it);
- anything else: 404 (``ws4redis.servers.asgi.get_asgi_application()`` sends it to Django instead);
- lifespan: load and check the project at startup, close the hub at shutdown.

Nothing happens at import: the project is set up (``django.setup()``) at the lifespan's startup or the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from ws4redis import settings
from ws4redis.servers.asgi.handshake import environ_of, path_of, run_handshake
from ws4redis.servers.asgi.lifespan import serve_lifespan
from ws4redis.servers.asgi.refusal import answer_http, deny

__all__ = ["WebsocketApplication", "under_websocket_url"]

logger = logging.getLogger("ws4redis.asgi.websocket")  # its name before the move: logging configurations keep it

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[..., Awaitable[None]]  # Django's handler types its arguments its own way


def under_websocket_url(scope: Mapping[str, Any]) -> bool:
    return path_of(scope).startswith(str(settings.get("WEBSOCKET_URL")))


def websocket_view(scope: Mapping[str, Any]) -> Any:
    """The urlconf match of a websocket view (``ws4redis.integration.decorators``) for this path, else ``None``."""
    from django.urls import Resolver404, resolve

    from ws4redis.integration.decorators import websocket_mode

    try:
        match = resolve(path_of(scope))
    except Resolver404:
        return None
    return match if websocket_mode(match.func) is not None else None


def is_websocket_view(scope: Mapping[str, Any]) -> bool:
    return websocket_view(scope) is not None


class WebsocketApplication:
    """The websocket ASGI application; one per process, its state is only whether the project is loaded."""

    def __init__(self) -> None:
        self._loaded = False
        self._django: ASGIApp | None = None  # Django's handler, for plain HTTP to a websocket view's path

    def load(self) -> None:
        """Set the project up and refuse to serve with a broken setting (``ImproperlyConfigured``)."""
        if self._loaded:
            return
        import django
        from django.apps import apps

        if not apps.ready:
            django.setup(set_prefix=False)  # what Django's get_asgi_application() does
        from ws4redis.integration.checks import raise_if_invalid

        raise_if_invalid()
        self._loaded = True

    async def startup(self) -> None:
        self.load()

    async def shutdown(self) -> None:
        from ws4redis.runtime.asyncio.driver import close_hub

        await close_hub()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await serve_lifespan(receive, send, startup=self.startup, shutdown=self.shutdown)
            return
        self.load()
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        else:
            raise ValueError(f"ws4redis: unknown ASGI scope type {kind!r}")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not under_websocket_url(scope):
            await answer_http(send, 404, "websockets only: see WEBSOCKET_URL")
            return
        if is_websocket_view(scope):
            await self._django_app()(scope, receive, send)  # the view's decorator answers plain HTTP
            return
        from ws4redis.exceptions import HandshakeRefused
        from ws4redis.integration.auth import check_upgrade

        try:
            check_upgrade(environ_of(scope))
        except HandshakeRefused as refusal:
            await answer_http(send, refusal.status, refusal.detail, refusal.headers)
            return
        # A valid upgrade the server did not upgrade: its websocket support is off (uvicorn --ws none).
        await answer_http(send, 501, "this server does not carry websockets: enable its websocket support")

    def _django_app(self) -> ASGIApp:
        if self._django is None:
            from django.core.handlers.asgi import ASGIHandler

            self._django = ASGIHandler()
        return self._django

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before the handshake
        if not under_websocket_url(scope):
            await deny(scope, send, 404, "no websocket here: see WEBSOCKET_URL")
            return
        view = websocket_view(scope)
        if view is not None:
            from ws4redis.servers.asgi.views import serve_view

            await serve_view(view, scope, receive, send)  # the view runs in a thread of its own
            return
        from ws4redis.exceptions import HandshakeRefused

        try:
            accepted = await run_handshake(scope)
        except HandshakeRefused as refusal:
            await deny(scope, send, refusal.status, refusal.detail, refusal.headers)
            return
        from ws4redis.runtime.asyncio.driver import open_connection

        connection = await open_connection(accepted, scope, receive, send, deny)
        # This frame lives as long as the socket: the handshake (its Django request and WSGI environ) is the
        # connection's to keep or let go once the socket is open, and the connect message is done with.
        del accepted, message
        if connection is not None:
            await connection.run()
