"""``get_asgi_application()``: one ASGI application for Django and ws4redis, as ``ws4redis.servers.wsgi.application``
is for
WSGI.

Websocket scopes, plain HTTP under ``WEBSOCKET_URL`` (400) and the lifespan go to ``ws4redis.servers.asgi.application``;
every other HTTP request goes to Django's own ASGI handler, unchanged (a websocket view's path too, so its decorator
answers plain HTTP as on WSGI).
"""

from __future__ import annotations

from typing import Any

from ws4redis.servers.asgi.websocket import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    WebsocketApplication,
    is_websocket_view,
    under_websocket_url,
)

__all__ = ["Router", "get_asgi_application"]


class Router:
    """Sends each scope to Django or to ws4redis by its type and path."""

    def __init__(self, django_app: ASGIApp, websocket_app: WebsocketApplication) -> None:
        self.django_app = django_app
        self.websocket_app = websocket_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (not under_websocket_url(scope) or is_websocket_view(scope)):
            await self.django_app(scope, receive, send)
        else:
            await self.websocket_app(scope, receive, send)


def get_asgi_application() -> Any:
    """The project's ASGI application with websockets: call it in ``asgi.py`` where Django's
    ``get_asgi_application()`` was called (it sets Django up the same way)."""
    from django.core.asgi import get_asgi_application as django_asgi_application

    django_app = django_asgi_application()  # django.setup(set_prefix=False)
    websocket_app = WebsocketApplication()
    websocket_app.load()  # a broken setting fails here, at import of asgi.py, with the list of what is wrong
    return Router(django_app, websocket_app)
