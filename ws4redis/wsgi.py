"""One WSGI application for Django and websockets on the same port (``uwsgi --module ws4redis.wsgi:application``).

Requests under ``WEBSOCKET_URL`` go to the websocket application, everything else to Django. Django is set up on
the first request of each worker, not at import, so importing this module has no side effects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ws4redis import settings

__all__ = ["WebsocketDispatcher", "WebsocketOnly", "application", "websocket_application"]


class WebsocketDispatcher:
    """Routes on the path prefix; builds both applications lazily, once per process."""

    def __init__(self) -> None:
        self._django: Any = None
        self._websocket: Any = None

    def _load(self) -> None:
        from django.core.wsgi import get_wsgi_application

        django_app = get_wsgi_application()  # calls django.setup()
        from ws4redis.uwsgi_runserver import uWSGIWebsocketServer

        self._websocket = uWSGIWebsocketServer()
        self._django = django_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._django is None:
            self._load()
        if environ.get("PATH_INFO", "").startswith(str(settings.get("WEBSOCKET_URL"))):
            return self._websocket(environ, start_response)  # type: ignore[no-any-return]
        return self._django(environ, start_response)  # type: ignore[no-any-return]


class WebsocketOnly(WebsocketDispatcher):
    """Only websockets (the websocket instance of a split deployment): other paths are 404, never Django views."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._django is None:
            self._load()
        if environ.get("PATH_INFO", "").startswith(str(settings.get("WEBSOCKET_URL"))):
            return self._websocket(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"websockets only: see WEBSOCKET_URL\n"]


application = WebsocketDispatcher()
websocket_application = WebsocketOnly()
