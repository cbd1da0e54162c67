"""The original's ``WSGI_APPLICATION = 'ws4redis.django_runserver.application'``, kept working.

``application`` serves Django and, under ``WEBSOCKET_URL``, websockets, on whichever server runs it:

- ws4redis's gevent servers (``manage.py runserver`` with ``ws4redis`` before ``django.contrib.staticfiles`` in
  ``INSTALLED_APPS``, ``runwebsocket --with-django``): the wsproto transport;
- uWSGI: uWSGI's upgrade, then the same transport;
- Django's own threaded server (``runserver`` of Django or staticfiles, ``LiveServerTestCase``, and 0.6 test suites
  doing ``cls.server_thread.httpd.set_app(application)``): each websocket on its request's thread
  (``ws4redis.servers.threaded``), for development and tests.

Unlike the original, nothing here patches Django or wsgiref, and no framing is written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ws4redis.servers.gevent_server import SOCKET_KEY, GeventDispatcher, StartResponse

__all__ = ["RunserverDispatcher", "application"]


class RunserverDispatcher(GeventDispatcher):
    """``GeventDispatcher`` that also serves websockets on Django's threaded wsgiref server."""

    def __init__(self) -> None:
        super().__init__()
        self._threaded: Any = None

    def _websocket(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if SOCKET_KEY not in environ and "uwsgi.version" not in environ:
            from ws4redis.servers.threaded import ThreadedWebsockets, wsgiref_handler

            handler = wsgiref_handler(start_response)
            if handler is not None:
                if self._threaded is None:
                    self._threaded = ThreadedWebsockets()
                return self._threaded(environ, start_response, handler)  # type: ignore[no-any-return]
        return super()._websocket(environ, start_response)


application = RunserverDispatcher()
