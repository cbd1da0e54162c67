"""Decorators marking a Django view as a websocket view (as dwebsocket and django-gevent-websocket offered).

A marked view is routed by the ordinary urlconf, under ``WEBSOCKET_URL``::

    # urls.py
    path("ws/echo/", views.echo)

    # views.py
    @require_websocket
    def echo(request):
        for message in request.websocket:       # bytes, until the client closes
            request.websocket.send(message)

For a websocket upgrade, ``ws4redis.servers.websocket_views`` runs the view in the connection's own greenlet after the
Origin check and the project's middleware (session, user) ran; ``request.websocket`` is a
``ws4redis.servers.websocket_views.WebSocket``. A view that returns an ``HttpResponse`` without having used the socket
is
answered with that response instead of the upgrade (e.g. 403 for a user it refuses).

A plain HTTP request to the same URL is served by Django as usual (all middleware, ``process_view`` included):

- ``require_websocket`` (alias ``websocket_view``) answers it with 400;
- ``accept_websocket`` runs the view with ``request.websocket = None``, so one URL can serve both.

Under ``ws4redis.servers.gevent_server`` (the gevent server) plain HTTP under ``WEBSOCKET_URL`` is only served when the
server
passes such requests on to the websocket application; see ``docs/views-and-hooks.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponseBadRequest

__all__ = ["MARK", "accept_websocket", "require_websocket", "websocket_mode", "websocket_view"]

#: Attribute set on a decorated view; ``functools.wraps`` copies it through outer decorators (``login_required``).
MARK = "ws4redis_websocket"

View = TypeVar("View", bound=Callable[..., Any])


def _mark(mode: str) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if getattr(request, "websocket", None) is None:  # a plain HTTP request, served by Django
                if mode == "require":
                    return HttpResponseBadRequest("this URL serves websockets only\n", content_type="text/plain")
                request.websocket = None  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        setattr(wrapper, MARK, mode)
        return wrapper  # type: ignore[return-value]

    return decorate


#: The view serves websockets only; a plain HTTP request gets 400.
require_websocket: Callable[[View], View] = _mark("require")
#: The view serves websockets and plain HTTP (``request.websocket`` is ``None`` for the latter).
accept_websocket: Callable[[View], View] = _mark("accept")
#: The same as ``require_websocket``, the name django-gevent-websocket users know.
websocket_view = require_websocket


def websocket_mode(view: Any) -> str | None:
    """``"require"``, ``"accept"`` or ``None`` (not a websocket view)."""
    mode = getattr(view, MARK, None)
    return mode if isinstance(mode, str) else None
