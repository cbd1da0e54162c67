"""Websockets on Django's own threaded server (wsgiref): ``manage.py runserver`` of plain Django or staticfiles with
``WSGI_APPLICATION = 'ws4redis.django_runserver.application'``, and ``LiveServerTestCase``.

That server gives each request a thread and never hands its sockets over, so a websocket keeps its request's thread
for as long as it is open, as with django-websocket-redis 0.6: this mode is for development and tests, not for
production (a thread and a small event loop per open websocket).

Nothing per socket is written twice: the request's thread runs the same connection loop
(``ws4redis.runtime.gevent.connection``) and
wsproto transport as every other server, in the event loop gevent gives each thread (the process is not
monkey-patched, so everything that loop does not watch is blocking I/O of that thread: Redis calls, Django). The
process's hub is the same ``Hub``, in a service thread of its own with its own loop; its blocking reads from Redis
run in that loop's thread pool, so the loop stays free to subscribe and to ping. Between the two, ``get_hub()``
gives each thread a ``HubLink``: its calls run in the hub's thread, and what the hub tells a connection (a message,
a reconnect, a revocation, a drain) is posted back to the connection's own loop with gevent's thread-safe callback,
each message as its own ``Delivery`` copy, so no mutable object is shared between threads.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import threading
import wsgiref.handlers
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import gevent
import gevent.event

from ws4redis.runtime.gevent import hub as hub_module
from ws4redis.runtime.gevent.hub import Delivery, Hub, Listener

if TYPE_CHECKING:
    from ws4redis.integration.auth import Handshake
    from ws4redis.runtime.gevent.wsproto_transport import WsprotoTransport

__all__ = ["HubLink", "ThreadedHub", "ThreadedWebsockets", "wsgiref_handler"]

logger = logging.getLogger("ws4redis.threaded")  # its name before the move: logging configurations keep it

StartResponse = Callable[..., Any]
_SOCKET_KEY = "ws4redis.socket"  # the same strings as ws4redis.servers.gevent_server's SOCKET_KEY and UPGRADED_KEY
_UPGRADED_KEY = "ws4redis.upgraded"
_CLOSED_KEY = "ws4redis.threaded.closed"  # a gevent Event of the request's thread, set once the websocket closed


def wsgiref_handler(start_response: StartResponse) -> wsgiref.handlers.BaseHandler | None:
    """The wsgiref handler of this request when the server is wsgiref's (Django's runserver and live server).

    ``start_response`` is a bound method of that handler, which keeps the socketserver request handler (and so the
    client's socket) in ``request_handler``, as 0.6 relied on too; any other server gives ``None``.
    """
    handler = getattr(start_response, "__self__", None)
    if not isinstance(handler, wsgiref.handlers.BaseHandler):
        return None
    connection = getattr(getattr(handler, "request_handler", None), "connection", None)
    return handler if isinstance(connection, socket.socket) else None


class ThreadedHub(Hub):
    """The process's hub in its service thread: its blocking reads run in the loop's thread pool."""

    def _receive(self, pubsub: Any) -> Any:
        return gevent.get_hub().threadpool.apply(pubsub.parse_response, (), {"block": True})


class _Bridge:
    """Stands for one connection in the hub's tables; posts what the hub tells it to the connection's own loop."""

    __slots__ = ("channels", "identity", "listener", "lock", "loop")

    def __init__(self, listener: Listener, loop: Any) -> None:
        self.listener = listener
        self.loop: Any = loop  # None once the connection's thread let its loop go
        self.lock = threading.Lock()
        self.channels: set[str] = set()
        self.identity: set[tuple[str, str]] = set()

    def _post(self, function: Callable[..., Any], *args: Any) -> None:
        with self.lock:  # the loop is not destroyed between the check and the post
            if self.loop is not None:
                self.loop.run_callback_threadsafe(function, *args)

    def deliver(self, delivery: Delivery) -> None:
        copy = Delivery(delivery.channel, delivery.data, delivery.text, delivery.id, delivery.event)
        copy.received = delivery.received
        copy.pending = 1
        self._post(self.listener.deliver, copy)

    def hub_reconnected(self) -> None:
        self._post(self.listener.hub_reconnected)

    def revoke(self) -> None:
        self._post(self.listener.revoke)

    def shutdown(self, reconnect_in_ms: int) -> None:
        self._post(self.listener.shutdown, reconnect_in_ms)


class _Service:
    """The hub's thread: its gevent loop runs the hub and whatever the links ask of it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.hub: ThreadedHub | None = None
        self.loop: Any = None
        self._bridges: dict[int, _Bridge] = {}  # id(listener) -> its bridge
        self._lock = threading.Lock()
        ready = threading.Event()
        thread = threading.Thread(target=self._main, args=(ready,), name="ws4redis-hub", daemon=True)
        thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        self.hub = ThreadedHub()  # made here: its gevent objects belong to this thread's loop
        self.loop = gevent.get_hub().loop
        ready.set()
        while True:  # a daemon thread: it serves callbacks for as long as the process lives
            gevent.sleep(3600)

    def call(self, function: Callable[..., Any], *args: Any, wait: float, **kwargs: Any) -> Any:
        """Run ``function`` in a greenlet of the hub's thread and wait for its result (or exception) here."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.run_callback_threadsafe(gevent.spawn, run)
        return future.result(wait)

    def bridge(self, listener: Listener, *, create: bool) -> _Bridge | None:
        with self._lock:
            bridge = self._bridges.get(id(listener))
            if bridge is None and create:
                bridge = self._bridges[id(listener)] = _Bridge(listener, gevent.get_hub().loop)
                _thread.loop = bridge.loop  # this thread now has a gevent loop: let go of it when its request ends
            return bridge

    def forget(self, bridge: _Bridge) -> None:
        with self._lock:
            if self._bridges.get(id(bridge.listener)) is bridge:
                del self._bridges[id(bridge.listener)]
        with bridge.lock:
            bridge.loop = None

    def forget_loop(self, loop: Any) -> None:
        """The thread of ``loop`` is done: nothing may be posted to it any more."""
        with self._lock:
            gone = [b for b in self._bridges.values() if b.loop is loop]
        for bridge in gone:
            self.forget(bridge)


_service: _Service | None = None
_service_lock = threading.Lock()
_thread = threading.local()  # per request thread: ``loop`` once it has a gevent loop of its own


def _get_service() -> _Service:
    global _service
    with _service_lock:
        if _service is None or _service.pid != os.getpid():
            _service = _Service()
            hub_module.provider = _link
        return _service


def _link() -> Hub:
    return cast(Hub, HubLink(_get_service()))


class HubLink:
    """What ``get_hub()`` gives a thread of this process: the hub's calls, run in the hub's own thread."""

    def __init__(self, service: _Service) -> None:
        self._service = service

    @property
    def _hub(self) -> ThreadedHub:
        assert self._service.hub is not None
        return self._service.hub

    def attach(
        self, listener: Listener, channels: Iterable[str], *, timeout: float, identity: Iterable[tuple[str, str]] = ()
    ) -> None:
        bridge = self._service.bridge(listener, create=True)
        assert bridge is not None
        channels, identity = list(channels), list(identity)
        try:
            self._service.call(
                self._hub.attach, bridge, channels, timeout=timeout, identity=identity, wait=timeout + 5
            )
        except BaseException:
            # The hub let go of the channels it could not confirm; the identity is let go of here.
            self._service.loop.run_callback_threadsafe(gevent.spawn, self._detach, bridge, [], identity)
            if not bridge.channels and not bridge.identity:
                self._service.forget(bridge)
            raise
        bridge.channels.update(channels)
        bridge.identity.update(identity)

    def detach(self, listener: Listener, channels: Iterable[str], *, identity: Iterable[tuple[str, str]] = ()) -> None:
        bridge = self._service.bridge(listener, create=False)
        if bridge is None:
            return
        channels, identity = list(channels), list(identity)
        bridge.channels.difference_update(channels)
        bridge.identity.difference_update(identity)
        if not bridge.channels and not bridge.identity:
            self._service.forget(bridge)
        # Not waited for: nothing here depends on Redis confirming an UNSUBSCRIBE.
        self._service.loop.run_callback_threadsafe(gevent.spawn, self._detach, bridge, channels, identity)

    def _detach(self, bridge: _Bridge, channels: list[str], identity: list[tuple[str, str]]) -> None:
        self._hub.detach(bridge, channels, identity=identity)

    def confirmed(self, channels: Iterable[str], timeout: float) -> bool:
        return bool(self._service.call(self._hub.confirmed, list(channels), timeout, wait=timeout + 5))

    @property
    def channels(self) -> list[str]:
        return self._hub.channels

    def stop(self) -> None:
        self._service.call(self._hub.stop, wait=5)


class ThreadedWebsockets:
    """The websocket application on wsgiref: each websocket served on its request's thread until it closes."""

    def __init__(self) -> None:
        from ws4redis.servers.application import WebsocketApplication

        self._app = WebsocketApplication(self._transport)

    @staticmethod
    def _transport(environ: dict[str, Any], handshake: Handshake) -> WsprotoTransport:
        from ws4redis.runtime.gevent.wsproto_transport import WsprotoTransport, options_from_settings

        transport = WsprotoTransport(environ[_SOCKET_KEY], environ, handshake.key, options_from_settings())
        closed = environ[_CLOSED_KEY] = gevent.event.Event()
        transport.on_closed = lambda _transport: closed.set()
        return transport

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, handler: wsgiref.handlers.BaseHandler
    ) -> Iterable[bytes]:
        service = _get_service()  # before the handshake: get_hub() gives this thread a link from here on
        request_handler: Any = getattr(handler, "request_handler")  # noqa: B009 - wsgiref's, set by its server
        environ[_SOCKET_KEY] = request_handler.connection
        try:
            result = self._app(environ, start_response)
            if not environ.get(_UPGRADED_KEY):
                return result  # refused before the upgrade: an ordinary HTTP response
            from ws4redis.integration.hooks import close_db_connections

            close_db_connections()  # the handshake's, not held for the websocket's lifetime
            environ[_CLOSED_KEY].wait()  # this thread's loop serves the websocket until it closes
        finally:
            loop = _thread.__dict__.pop("loop", None)
            if loop is not None or environ.get(_UPGRADED_KEY):
                service.forget_loop(gevent.get_hub().loop)
                gevent.get_hub().destroy(destroy_loop=True)  # a loop per thread would otherwise outlive it
        # The 101 went out on the socket itself: wsgiref must write no response, and read no further request.
        start_response("101 Switching Protocols", [])
        handler.headers_sent = True  # type: ignore[attr-defined]  # wsgiref's (untyped): no headers will follow
        request_handler.close_connection = True
        return []
