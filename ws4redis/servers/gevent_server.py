"""The gevent server: Django and websockets on one port without uWSGI (``gevent.pywsgi`` + the wsproto transport).

``gevent.pywsgi`` parses the HTTP request; on a websocket upgrade ``WebsocketHandler`` hands the raw socket to the
websocket application in the environ (``ws4redis.socket``), and once the transport has written its 101 the handler
writes nothing more and closes the connection when the application returns. Neither Django nor wsgiref is patched.

This module imports the core (and so redis-py) only when a server is built, so that ``patch()`` can run first:
redis-py imports ``ssl`` names directly, and patching after that import leaves them unpatched.

Monkey-patching (``patch()``) is the entry point's job and happens once per process: in ``manage.py runserver``
(in the process that serves, before the autoreloader starts its threads) and in ``manage.py runwebsocket`` (in
each worker, after the fork). The hub and the publisher use redis-py, whose sockets must be gevent's.
"""

from __future__ import annotations

import logging
import random
import socket
import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from gevent.pywsgi import WSGIHandler, WSGIServer

from ws4redis import settings

if TYPE_CHECKING:
    from ws4redis.integration.auth import Handshake
    from ws4redis.runtime.gevent.wsproto_transport import WsprotoTransport

__all__ = [
    "SOCKET_KEY",
    "GeventDispatcher",
    "RunserverServer",
    "TransportFactory",
    "WebsocketHandler",
    "make_server",
    "patch",
]

logger = logging.getLogger("ws4redis.server")  # its name before the move: logging configurations keep it

#: The environ key under which ``WebsocketHandler`` passes the client socket to the websocket application.
SOCKET_KEY = "ws4redis.socket"
#: Set in the environ by the transport once its 101 went out (the same string as ``transports.wsproto``'s).
UPGRADED_KEY = "ws4redis.upgraded"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def patch() -> None:
    """Monkey-patch the standard library for gevent, once; a no-op when already done (e.g. by the caller)."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return
    # Database connections opened so far belong to the real thread; after patching, every greenlet counts as a
    # thread of its own, and Django would refuse to close them from another one.
    from asgiref.local import Local
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close()
        del connections[connection.alias]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", monkey.MonkeyPatchWarning)
        monkey.patch_all()
    for warning in caught:
        text = str(warning.message)
        # redis-py imports ``ssl`` names in ``redis.asyncio`` (unused here: the hub and publisher are synchronous),
        # and Django's app loading may import redis-py before any entry point can patch.
        if "direct imports" in text and text.count("(/") == 1 and "redis.asyncio" in text:
            logger.debug("ws4redis: %s", text)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    # Django made its per-thread connection storage (a ``threading.local``) when ``django.db`` was imported, before
    # this patch: all greenlets would share it, one connection for all. A storage made now is per greenlet.
    connections._connections = Local(connections.thread_critical)  # type: ignore[attr-defined]  # Django internal


class TransportFactory:
    """Makes wsproto transports for upgraded requests and remembers the live ones, for a graceful shutdown."""

    def __init__(self) -> None:
        import gevent.event

        self.live: weakref.WeakSet[WsprotoTransport] = weakref.WeakSet()
        self.all_closed = gevent.event.Event()

    def __call__(self, environ: dict[str, Any], handshake: Handshake) -> WsprotoTransport:
        from ws4redis.runtime.gevent.wsproto_transport import WsprotoTransport, options_from_settings

        transport = WsprotoTransport(environ[SOCKET_KEY], environ, handshake.key, options_from_settings())
        self.live.add(transport)
        transport.on_closed = self._closed
        return transport

    def _closed(self, transport: WsprotoTransport) -> None:
        self.live.discard(transport)
        if not self.live:
            self.all_closed.set()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until every websocket told to go by ``shutdown`` has closed, at most ``timeout`` seconds.

        Idle websockets hold no greenlet (``ws4redis.runtime.gevent.connection``), so the server's pool of request
        greenlets
        cannot tell when they are gone; this can.
        """
        if not self.live:
            return True
        self.all_closed.clear()
        return bool(self.all_closed.wait(timeout))

    def shutdown(self, *, window: float, grace: float) -> int:
        """Close every live websocket with 1001, each with its own random reconnect delay within ``window`` s.

        Spreading the delays is the point: a thousand clients told "come back in 1 s" would all return at once.
        """
        told = 0
        for transport in list(self.live):
            delay_ms = int(random.uniform(0.5, max(window, 0.5)) * 1000)
            told += transport.shutdown(delay_ms, grace=grace)
        return told


class GeventDispatcher:
    """One WSGI application: paths under ``WEBSOCKET_URL`` to websockets, the rest to Django (or 404).

    Django's application is loaded on the first request (``get_wsgi_application()`` calls ``django.setup()``) unless
    one is given; ``serve_django=False`` serves websockets only (``runwebsocket``, the split deployment).
    """

    def __init__(self, django_app: WSGIApp | None = None, *, serve_django: bool = True) -> None:
        from ws4redis.servers.application import WebsocketApplication

        self.transports = TransportFactory()
        self.websocket_app = WebsocketApplication(self.transports)
        self._django = django_app
        self._serve_django = serve_django
        self._uwsgi_app: WSGIApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(str(settings.get("WEBSOCKET_URL"))):
            return self._websocket(environ, start_response)
        if not self._serve_django:
            return _refuse(start_response, 404, "Not Found", "this server only serves websockets", [])
        if self._django is None:
            from django.core.wsgi import get_wsgi_application

            self._django = get_wsgi_application()
        return self._django(environ, start_response)

    def _websocket(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if SOCKET_KEY in environ:
            return self.websocket_app(environ, start_response)
        if "uwsgi.version" in environ:  # WSGI_APPLICATION = ws4redis.django_runserver.application under uWSGI
            if self._uwsgi_app is None:
                from ws4redis.servers.uwsgi_runserver import uWSGIWebsocketServer

                self._uwsgi_app = uWSGIWebsocketServer()
            return self._uwsgi_app(environ, start_response)
        return _refuse(
            start_response, 501, "Not Implemented",
            "this server cannot hand over its sockets: use ws4redis's runserver (list 'ws4redis' before "
            "'django.contrib.staticfiles' in INSTALLED_APPS), runwebsocket or uWSGI", [],
        )


def _refuse(
    start_response: StartResponse, status: int, reason: str, detail: str, headers: list[tuple[str, str]]
) -> list[bytes]:
    from ws4redis.servers.application import refuse

    return refuse(start_response, status, reason, detail, headers)


class WebsocketHandler(WSGIHandler):  # type: ignore[misc]
    """``gevent.pywsgi``'s handler, passing the socket on and standing back once a websocket took it over."""

    socket: Any  # pywsgi's (untyped): the client's socket, None once let go of

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ[SOCKET_KEY] = self.socket  # only a websocket request that passes every check ever uses it
        return environ

    def run_application(self) -> None:
        result = self.application(self.environ, self.start_response)
        try:
            if self.environ.get(UPGRADED_KEY):
                # The transport wrote the 101 and carries the websocket on its own descriptor: no HTTP response may
                # follow, and pywsgi must let go of the socket without reading it. Its ``handle()`` ends with a
                # recv() that discards what the client sent next, to avoid a reset: here that is the websocket's
                # first frame (one first message in a few hundred was lost so: tests/test_websocket.py).
                self.status = self._orig_status = "101 Switching Protocols"
                self.close_connection = True
                from ws4redis.runtime.gevent.wsproto_transport import close_now

                sock, self.socket = self.socket, None
                close_now(sock.detach())  # now, not when the last file object made from it (wsgi.input) is gone
                return
            self.result = result
            self.process_result()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            self.result = None


def make_server(listener: Any, application: WSGIApp, *, log: Any = None) -> Any:
    """A ``gevent.pywsgi.WSGIServer`` with ``WebsocketHandler`` on ``listener`` (a bound socket or an address)."""
    from gevent.pool import Pool

    # A pool (unbounded) rather than bare greenlets, so that ``stop(timeout)`` can wait for websockets to close.
    return WSGIServer(listener, application, handler_class=WebsocketHandler, log=log, error_log=logger, spawn=Pool())


def listen(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket (IPv6 when ``host`` contains ':'), made before the fork and shared by the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(backlog)
    return sock


class RunserverServer:
    """What Django's ``runserver`` expects of its ``server_cls``, served by gevent instead of wsgiref.

    Django's ``basehttp.run`` calls ``server_cls(address, handler_class, ipv6=...)``, reads ``server_port``, then
    ``set_app`` and ``serve_forever``; that is the whole contract. Django's ``--nothreading`` has no meaning here:
    every request gets its own greenlet.
    """

    def __init__(self, server_address: tuple[str, int], handler_class: Any = None, ipv6: bool = False,
                 **kwargs: Any) -> None:
        host, port = server_address
        self.socket = listen(f"[{host}]" if ipv6 and ":" not in host else host, port)
        self.server_address = self.socket.getsockname()
        self.server_port = int(self.server_address[1])
        self.application: WSGIApp | None = None
        self.daemon_threads = True

    def set_app(self, application: WSGIApp) -> None:
        self.application = application

    def serve_forever(self) -> None:
        assert self.application is not None
        make_server(self.socket, self.application, log=logging.getLogger("django.server")).serve_forever()
