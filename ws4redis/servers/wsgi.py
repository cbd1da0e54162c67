"""One WSGI application for Django and websockets on the same port (``uwsgi --module
ws4redis.wsgi:application``).

Requests under ``WEBSOCKET_URL`` go to the websocket application, everything else to Django
(``websocket_application`` serves only websockets, for the websocket instance of a split deployment).

When uWSGI loads this module (``module = ws4redis.wsgi:application``), the project is imported right then: in
each
worker after the fork with ``lazy-apps`` (as ``uwsgi.ini`` does), in the master otherwise. A wrong
``DJANGO_SETTINGS_MODULE`` or python path then fails while uWSGI loads the app, with the import error in its log,
and ``need-app`` stops the instance, instead of a worker that says it is ready and answers every request with a 500.
Under any other server nothing happens at import: each application loads on its first request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ws4redis import settings

__all__ = ["WebsocketDispatcher", "WebsocketOnly", "application", "websocket_application"]


class WebsocketDispatcher:
    """Routes on the path prefix; builds both applications once per process (``load()``, or the first request)."""

    def __init__(self) -> None:
        self._django: Any = None
        self._websocket: Any = None

    def load(self) -> None:
        """Import the project (``django.setup()``) and build the applications; does nothing the second time."""
        if self._websocket is not None:
            return
        from ws4redis.servers.uwsgi_runserver import make_cooperative, uWSGIWebsocketServer

        make_cooperative()  # before the project's modules are imported, where uWSGI's gevent loop runs unpatched
        from django.core.wsgi import get_wsgi_application

        django_app = get_wsgi_application()  # calls django.setup()
        self._websocket = uWSGIWebsocketServer()
        self._django = django_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._websocket is None:
            self.load()
        if environ.get("PATH_INFO", "").startswith(str(settings.get("WEBSOCKET_URL"))):
            return self._websocket(environ, start_response)  # type: ignore[no-any-return]
        return self._django(environ, start_response)  # type: ignore[no-any-return]


class WebsocketOnly(WebsocketDispatcher):
    """Only websockets (the websocket instance of a split deployment): other paths are 404, never Django views."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._websocket is None:
            self.load()
        if environ.get("PATH_INFO", "").startswith(str(settings.get("WEBSOCKET_URL"))):
            return self._websocket(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"websockets only: see WEBSOCKET_URL\n"]


def _loaded_by_uwsgi() -> bool:
    """Whether this module is being imported inside a uWSGI process (which imports it to load the app)."""
    try:
        import uwsgi  # noqa: F401 - only importable inside a uWSGI process
    except ImportError:
        return False
    return True


application = WebsocketDispatcher()
websocket_application = WebsocketOnly()

if _loaded_by_uwsgi():
    # uWSGI's app loading is the moment to find out that the project cannot be imported (need-app, see above).
    application.load()
    websocket_application.load()
