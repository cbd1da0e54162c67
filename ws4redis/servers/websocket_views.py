"""Running a websocket view (``ws4redis.integration.decorators``) on a transport, in the connection's own greenlet.

``WebsocketApplication`` asks ``view_for(environ)`` first: a path under ``WEBSOCKET_URL`` that resolves (the project's
urlconf) to a marked view is served here instead of by the no-code connection loop:

1. not a websocket upgrade: Django's own WSGI handler serves it (the decorator then answers 400 or runs the view);
2. the upgrade checks and the Origin check (403 for a foreign origin, as every websocket of ws4redis);
3. the project's middleware (``auth.build_request``): session and user, or a middleware's own refusal;
4. the view runs with ``request.websocket``; the upgrade (101) happens when it first receives or sends (or calls
   ``accept()``), so a view can still answer with an ordinary ``HttpResponse`` (403, 404...) before it.

Only the ``Transport`` interface is used, so views run unchanged under uWSGI and under the gevent server. Sends
happen in the view's greenlet only (uWSGI's calls act on the current greenlet's request); messages of facilities
the view subscribed to are queued by the hub and forwarded by that greenlet while the view waits in ``receive()``.
What is queued, the slow-consumer policy, the notices (``revoked``, ``shutdown``, ``reconnected``, ``gap``) and the
close codes are the same ``ws4redis.core.Session``'s as on the no-code path; this module only does the I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.event
from django.core import signals
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, ResolverMatch, resolve

from ws4redis import configuration, metrics
from ws4redis.broker import history
from ws4redis.broker.audience import Subscription
from ws4redis.core import Session, State, actions
from ws4redis.core.protocol import protocol_for
from ws4redis.exceptions import CloseCode, ConnectionClosed, HandshakeRefused
from ws4redis.integration.auth import Handshake, build_request, check_origin, check_upgrade
from ws4redis.integration.decorators import websocket_mode
from ws4redis.integration.hooks import close_db_connections
from ws4redis.integration.view_socket import ViewSocket
from ws4redis.runtime.gevent.hub import get_hub
from ws4redis.runtime.gevent.transport import Transport

__all__ = ["ViewSubscription", "WebSocket", "serve_view", "view_for"]

logger = logging.getLogger("ws4redis.views_runtime")  # its name before the move: logging configurations keep it

StartResponse = Callable[..., Any]
TransportFactory = Callable[[dict[str, Any], Handshake], Transport]

_django_app: Any = None


def view_for(environ: dict[str, Any]) -> ResolverMatch | None:
    """The urlconf match of a websocket view for this request's path, or ``None`` (the no-code path)."""
    try:
        match = resolve(environ.get("PATH_INFO", "") or "/")
    except Resolver404:
        return None
    return match if websocket_mode(match.func) else None


def _is_upgrade(environ: dict[str, Any]) -> bool:
    return str(environ.get("HTTP_UPGRADE", "")).strip().lower() == "websocket"


class ViewSubscription:
    """Channels a view listens to through the process's hub; their messages go to the client as they arrive."""

    def __init__(self, websocket: WebSocket, facility: str, audiences: tuple[str, ...], channels: list[str]) -> None:
        self.websocket = websocket
        self.facility = facility
        self.audiences = audiences
        self.channels = channels

    def cancel(self) -> None:
        """Stop listening (idempotent); ending the view cancels every subscription anyway."""
        self.websocket._detach(self)


class WebSocket(ViewSocket):
    """``request.websocket`` of a websocket view: receive, send, iterate, close, subscribe, publish.

    Messages come as ``bytes`` (the transports do not tell text from binary frames); ``send`` sends ``str`` as a
    text frame, ``bytes`` as text when valid UTF-8 (as ws4redis delivers payloads), ``send_bytes`` always binary.
    ``receive`` returns ``None`` only on timeout; a closed socket raises ``ConnectionClosed``, which the runtime
    treats as the normal end of the view. Iteration ends when the peer closes.
    """

    def __init__(self, transport: Transport, request: HttpRequest, environ: dict[str, Any]) -> None:
        self.transport = transport
        self.request = request
        offered = str(environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", ""))
        #: Subprotocols the client offered, in its order; pass one to ``accept`` to choose it.
        self.protocols: list[str] = [p.strip() for p in offered.split(",") if p.strip()]
        self.subprotocol: str | None = None
        self.accepted = False
        self.closed = False
        self._session: Session | None = None  # made at the upgrade, with the chosen subprotocol
        self._wake = gevent.event.Event()
        self._watcher: Any = None
        self._close: ConnectionClosed | None = None
        self._subscriptions: list[ViewSubscription] = []
        self._identity: list[tuple[str, str]] = []

    def __bool__(self) -> bool:
        return True  # ``if request.websocket:`` tells a websocket request from plain HTTP (``None``)

    # -- the view's API -------------------------------------------------------------------------------------------
    def accept(self, subprotocol: str | None = None) -> None:
        """Complete the upgrade (101); implicit at the first receive or send. ``subprotocol`` must have been offered."""
        if self.accepted:
            return
        if subprotocol is not None and subprotocol not in self.protocols:
            raise ValueError(f"the client did not offer subprotocol {subprotocol!r}")
        self.transport.accept(subprotocol)
        self.accepted = True
        self.subprotocol = subprotocol
        config = configuration.current()
        self._session = Session(
            config, protocol_for(subprotocol, heartbeat=None, prefix=config.prefix), listen=[], publish=[],
            recovery=history.recovery_for([]), label=_label(self.request),
        )
        self._session.opened("", welcome=False)  # the view speaks for itself
        metrics.CONNECTIONS.inc()
        self._watcher = gevent.get_hub().loop.io(self.transport.fileno(), 1)
        self._watcher.start(self._wake.set)
        # Registered by identity so logout/revocation closes view sockets too, as every ws4redis socket.
        self._identity = _identity(self.request)
        get_hub().attach(self, [], timeout=0.0, identity=self._identity)

    def receive(self, timeout: float | None = None) -> bytes | None:
        """The next message from the client, ``None`` after ``timeout`` seconds; raises ``ConnectionClosed``."""
        self.accept()
        assert self._session is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = self._session.config.wake_interval
        limit = self._session.config.max_message_size
        while True:
            self._wake.clear()  # before looking, so nothing that arrives from now on is missed
            self._forward()
            data = self.transport.receive_nowait()  # also lets uWSGI answer pings
            if data is not None:
                if len(data) > limit:
                    metrics.DROPPED.labels("message_too_big").inc()
                    raise self._fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
                return data
            if self.transport.pending:  # the transport's frame budget was spent: the others' turn, then on
                gevent.sleep(0)
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._wake.wait(interval if remaining is None else min(interval, remaining))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the socket (idempotent); before the upgrade it only marks the view as done. A close the server
        decided (the session's: revoked 4003, drained 1001, slow consumer 4008, message too big 1009) keeps its code
        even when the view ends normally after it."""
        if self.closed:
            return
        self.closed = True
        if self._close is not None:  # a close the server decided (revoked, drained, slow consumer, too big) wins
            code, reason = self._close.code, self._close.reason
        for subscription in list(self._subscriptions):
            self._detach(subscription)
        if self.accepted:
            if self._watcher is not None:
                self._watcher.stop()
            get_hub().detach(self, [], identity=self._identity)
            if self._session is not None:
                self._session.closed()  # what the view never forwarded is counted done
            self.transport.close(code, reason)
            metrics.CONNECTIONS.dec()
            metrics.CLOSED.labels(str(int(code))).inc()

    def subscribe(self, facility: str, *audiences: str) -> ViewSubscription:
        """Listen to ``facility`` for ``audiences`` of this request (default broadcast); returns a handle.

        The view is trusted code, so no policy applies; ``user``, ``group`` and ``session`` mean this request's own
        (``SELF``). Messages are forwarded to the client while the view waits in ``receive()`` or iteration, framed
        as the accepted subprotocol says (``ws4redis.v2`` envelopes, else the payload as published).
        """
        self.accept()
        chosen, channels = self._channels_of(facility, audiences)
        get_hub().attach(self, channels, timeout=configuration.current().subscribe_timeout)
        subscription = ViewSubscription(self, facility, chosen, channels)
        self._subscriptions.append(subscription)
        return subscription

    # -- internals ------------------------------------------------------------------------------------------------
    def _pending(self) -> None:
        """Carry out what the session decided (notices, then a close, raised); raise a close already carried out."""
        if self._close is not None:
            raise self._close
        session = self._session
        if session is None or not session.busy:
            return
        for action in session.take():
            if isinstance(action, actions.Send):
                self.transport.send(action.data, text=action.text)
            elif isinstance(action, actions.Close):
                self._close = ConnectionClosed(action.code, action.reason)
                raise self._close

    def _forward(self) -> None:
        """Send what the hub queued, in this greenlet; raise the pending close, if any."""
        self._pending()
        session = self._session
        if session is None:
            return
        frame = session.frame
        for delivery in session.drain():  # each already counted done: a send that raises counts it once either way
            data, text = frame(delivery)
            self.transport.send(data, text=text)
            metrics.DELIVERED.inc()

    def _detach(self, subscription: ViewSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            still = {c for s in self._subscriptions for c in s.channels}
            get_hub().detach(self, [c for c in subscription.channels if c not in still])

    def _send(self, data: bytes, *, text: bool) -> None:
        self.accept()
        if self._session is not None and self._session.state is not State.OPEN:
            self._pending()  # a decided close: its notices go out, then it is raised
        if self._close is not None:
            raise self._close
        self.transport.send(data, text=text)

    def _fail(self, code: int, reason: str) -> ConnectionClosed:
        self._close = ConnectionClosed(code, reason)
        return self._close


def _identity(request: HttpRequest) -> list[tuple[str, str]]:
    return Handshake(request, Subscription("", frozenset(), frozenset()), None, None, "").identity


def _label(request: HttpRequest) -> str:
    return Handshake(request, Subscription("", frozenset(), frozenset()), None, None, "").label


def _http_response(response: HttpResponseBase, start_response: StartResponse) -> Iterable[bytes]:
    """A view's ``HttpResponse`` as the WSGI answer, as Django's WSGI handler writes it."""
    headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
    start_response(f"{response.status_code} {response.reason_phrase}", headers)
    return response


def serve_view(
    match: ResolverMatch, environ: dict[str, Any], start_response: StartResponse, transport_factory: TransportFactory
) -> Iterable[bytes]:
    """Serve one request for a websocket view: plain HTTP through Django, an upgrade through the view itself."""
    from ws4redis.servers.application import refuse

    global _django_app
    if not _is_upgrade(environ):
        if _django_app is None:
            from django.core.handlers.wsgi import WSGIHandler

            _django_app = WSGIHandler()
        return _django_app(environ, start_response)  # type: ignore[no-any-return]
    signals.request_started.send(sender=WebSocket, environ=environ)
    websocket: WebSocket | None = None
    try:
        try:
            key = check_upgrade(environ)
            check_origin(environ)
            request = build_request(environ)
        except HandshakeRefused as refusal:
            logger.info("ws4redis: refused %s: %d %s", environ.get("PATH_INFO"), refusal.status, refusal.detail)
            return refuse(start_response, refusal.status, refusal.reason, refusal.detail, refusal.headers)
        placeholder = Handshake(request, Subscription(match.view_name or "", frozenset(), frozenset()), None, None, key)
        websocket = WebSocket(transport_factory(environ, placeholder), request, environ)
        request.websocket = websocket  # type: ignore[attr-defined]
        code: int = CloseCode.NORMAL
        reason = ""
        response: Any = None
        try:
            response = match.func(request, *match.args, **match.kwargs)
        except ConnectionClosed as closed:
            code, reason = closed.code, closed.reason  # the peer left, or a close was requested: a normal end
        except Exception:
            logger.exception("ws4redis: websocket view %s failed", match.view_name or match.func)
            if not websocket.accepted:
                return refuse(start_response, 500, "Internal Server Error", "internal error", [])
            code, reason = CloseCode.INTERNAL_ERROR, "internal error"
        if not websocket.accepted:
            websocket.closed = True
            if isinstance(response, HttpResponseBase):
                return _http_response(response, start_response)
            return refuse(start_response, 500, "Internal Server Error", "the view neither accepted nor answered", [])
        if response is not None and not isinstance(response, HttpResponseBase):
            logger.warning("ws4redis: websocket view %s returned %r, ignored", match.view_name, type(response))
        websocket.close(code, reason)
        return []
    finally:
        if websocket is not None and not websocket.closed:
            websocket.close(CloseCode.INTERNAL_ERROR, "internal error")
        close_db_connections()
        signals.request_finished.send(sender=WebSocket)
