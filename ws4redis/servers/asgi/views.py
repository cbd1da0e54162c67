"""Websocket views (``ws4redis.integration.decorators``) under ASGI: the sync view runs in a thread of its own.

A websocket view is ordinary blocking Django code that lives as long as its socket (``for message in ws: ...``), so
it gets a thread for its whole life (as under Django's threaded server), never Django's one sync thread nor the
small default pool. The view sees the same ``request.websocket`` API as on WSGI (``ws4redis.servers.websocket_views``):
``accept``, ``receive`` (with a timeout), iteration, ``send``, ``send_bytes``, ``send_json``, ``close``,
``subscribe``, ``publish``. Every call crosses to the event loop, which alone touches the ASGI connection, the hub and
the socket's ``Session`` (its queue, the slow-consumer policy, the v2 notices and close codes, as everywhere).

Before the upgrade: the Origin check and the project's middleware (``auth.check_origin``, ``auth.build_request``), as
on WSGI; a view that answers with an ``HttpResponse`` instead of accepting is a refusal with that status where the
server has the denial response (else 403, see ``refusal``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping
from typing import Any, TypeVar

from ws4redis import configuration, metrics
from ws4redis.broker import history
from ws4redis.core import CloseCode, Session, State, actions
from ws4redis.core.config import MESSAGES_PER_ROUND
from ws4redis.exceptions import ConnectionClosed
from ws4redis.integration.view_socket import ViewSocket

__all__ = ["ThreadWebSocket", "serve_view"]

logger = logging.getLogger("ws4redis.asgi.views")  # its name before the move: logging configurations keep it

T = TypeVar("T")
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ThreadWebSocket(ViewSocket):
    """``request.websocket`` of a websocket view under ASGI; its methods are called from the view's thread."""

    def __init__(self, request: Any, scope: Mapping[str, Any], receive: Receive, send: Send,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        #: Subprotocols the client offered, in its order; pass one to ``accept`` to choose it.
        self.protocols: list[str] = [str(p) for p in scope.get("subprotocols") or ()]
        self.subprotocol: str | None = None
        self.accepted = False
        self.closed = False
        self._receive = receive
        self._send_asgi = send
        self._loop = loop
        self._session: Session | None = None
        self._wake = threading.Event()  # set on the loop (a message, a delivery, a close), waited on by the view
        self._inbox: collections.deque[MutableMapping[str, Any]] = collections.deque()
        self._room: asyncio.Event | None = None  # the reader waits on it while the inbox is full
        self._reader: asyncio.Task[None] | None = None
        self._close: ConnectionClosed | None = None
        self._channels: dict[Any, list[str]] = {}  # subscription handle -> its channels
        self._identity: list[tuple[str, str]] = []

    def __bool__(self) -> bool:
        return True

    # -- the view's API (its thread) --------------------------------------------------------------------------------
    def accept(self, subprotocol: str | None = None) -> None:
        """Complete the upgrade; implicit at the first receive or send. ``subprotocol`` must have been offered."""
        if self.accepted:
            return
        if subprotocol is not None and subprotocol not in self.protocols:
            raise ValueError(f"the client did not offer subprotocol {subprotocol!r}")
        # The user and session are read here, in the view's thread: on the loop Django's ORM may not run.
        self._on_loop(self._accept(subprotocol, label_of(self.request), identity_of(self.request)))

    def receive(self, timeout: float | None = None) -> bytes | None:
        """The next message from the client, ``None`` after ``timeout`` seconds; raises ``ConnectionClosed``."""
        self.accept()
        assert self._session is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = self._session.config.wake_interval
        while True:
            self._wake.clear()  # before looking, so nothing that arrives from now on is missed
            message = self._on_loop(self._round())
            if message is not None:
                return message
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._wake.wait(interval if remaining is None else min(interval, remaining))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the socket (idempotent); before the upgrade it only marks the view as done."""
        if self.closed:
            return
        self.closed = True
        if self._close is not None:  # decided already (revoked, drained, too big, the client left): that code wins
            code, reason = self._close.code, self._close.reason
        if self.accepted:
            self._on_loop(self._close_now(code, reason))

    def subscribe(self, facility: str, *audiences: str) -> Any:
        """Listen to ``facility`` for ``audiences`` of this request (default broadcast): trusted code, no policy."""

        self.accept()
        chosen, channels = self._channels_of(facility, audiences)
        handle = _Subscription(self, facility, chosen, channels)
        self._on_loop(self._attach(handle, channels))
        return handle

    # -- the loop's side ----------------------------------------------------------------------------------------
    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _accept(self, subprotocol: str | None, label: str, identity: list[tuple[str, str]]) -> None:
        from ws4redis.core.protocol import protocol_for
        from ws4redis.runtime.asyncio.driver import hub

        await self._send_asgi({"type": "websocket.accept", "subprotocol": subprotocol})
        self.accepted = True
        self.subprotocol = subprotocol
        config = configuration.current()
        self._session = Session(
            config, protocol_for(subprotocol, heartbeat=None, prefix=config.prefix), listen=[], publish=[],
            recovery=history.recovery_for([]), label=label,
        )
        self._session.opened("", welcome=False)  # the view speaks for itself
        metrics.CONNECTIONS.inc()
        self._room = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._identity = identity  # logout and revocation close view sockets too
        await hub().attach(self, [], timeout=0.0, identity=self._identity)

    async def _read(self) -> None:
        assert self._room is not None
        while True:
            while len(self._inbox) >= MESSAGES_PER_ROUND:  # the view reads slowly: the server's flow control holds
                self._room.clear()
                await self._room.wait()
            message = await self._receive()
            self._inbox.append(message)
            self._wake.set()
            if message["type"] == "websocket.disconnect":
                return

    async def _round(self) -> bytes | None:
        """Carry out what the session decided, write what the hub queued, then hand over one client message."""
        await self._pending()
        session = self._session
        assert session is not None
        for delivery in session.drain():
            await self._frame(*session.frame(delivery))
            metrics.DELIVERED.inc()
        if not self._inbox:
            return None
        message = self._inbox.popleft()
        assert self._room is not None
        self._room.set()
        if message["type"] == "websocket.disconnect":
            self._close = ConnectionClosed(int(message.get("code") or CloseCode.NORMAL), "")
            raise self._close
        data = str(message["text"]).encode() if message.get("text") is not None else bytes(message.get("bytes") or b"")
        if len(data) > session.config.max_message_size:
            metrics.DROPPED.labels("message_too_big").inc()
            self._close = ConnectionClosed(CloseCode.MESSAGE_TOO_BIG, "message too big")
            raise self._close
        return data

    async def _pending(self) -> None:
        if self._close is not None:
            raise self._close
        session = self._session
        if session is None or not session.busy:
            return
        for action in session.take():
            if isinstance(action, actions.Send):
                await self._frame(action.data, action.text)
            elif isinstance(action, actions.Close):
                self._close = ConnectionClosed(action.code, action.reason)
                raise self._close

    async def _frame(self, data: bytes, text: bool) -> None:
        from ws4redis.runtime.asyncio.frames import asgi_frame

        try:
            await asyncio.wait_for(self._send_asgi(asgi_frame(data, text)), 30.0)
        except (OSError, RuntimeError, TimeoutError):
            self._close = ConnectionClosed(1006, "")
            raise self._close from None

    async def _send_now(self, data: bytes, text: bool) -> None:
        session = self._session
        if session is not None and session.state is not State.OPEN:
            await self._pending()
        if self._close is not None:
            raise self._close
        await self._frame(data, text)

    def _send(self, data: bytes, *, text: bool) -> None:
        self.accept()
        self._on_loop(self._send_now(data, text))

    async def _attach(self, handle: _Subscription, channels: list[str]) -> None:
        from ws4redis.runtime.asyncio.driver import hub

        await hub().attach(self, channels, timeout=configuration.current().subscribe_timeout)
        self._channels[handle] = channels

    async def _detach(self, handle: _Subscription) -> None:
        from ws4redis.runtime.asyncio.driver import hub

        channels = self._channels.pop(handle, None)
        if channels is not None:
            still = {c for chans in self._channels.values() for c in chans}
            hub().detach(self, [c for c in channels if c not in still])

    async def _close_now(self, code: int, reason: str) -> None:
        from ws4redis.runtime.asyncio.driver import hub
        from ws4redis.runtime.asyncio.frames import send_close

        for handle in list(self._channels):
            await self._detach(handle)
        hub().detach(self, [], identity=self._identity)
        if self._reader is not None:
            self._reader.cancel()
        if self._session is not None and self._session.state is not State.CLOSED:
            self._session.closed()  # what the view never forwarded is counted done
        if code != 1006:
            await send_close(self._send_asgi, code, reason, label=self._session.label if self._session else "")
        metrics.CONNECTIONS.dec()
        metrics.CLOSED.labels(str(int(code))).inc()


def _placeholder(request: Any) -> Any:
    """The request as a ``Handshake`` with no channels: its ``identity`` and ``label`` are the ones every socket
    uses (the user, the session), so revocation and logs treat view sockets alike."""
    from ws4redis.broker.audience import Subscription
    from ws4redis.integration.auth import Handshake

    return Handshake(request, Subscription("", frozenset(), frozenset()), None, None, "")


def identity_of(request: Any) -> list[tuple[str, str]]:
    return list(_placeholder(request).identity)


def label_of(request: Any) -> str:
    return str(_placeholder(request).label)


class _Subscription:
    """A view's subscription handle: ``cancel()`` stops listening (idempotent)."""

    def __init__(self, websocket: ThreadWebSocket, facility: str, audiences: tuple[str, ...],
                 channels: list[str]) -> None:
        self.websocket = websocket
        self.facility = facility
        self.audiences = audiences
        self.channels = channels

    def cancel(self) -> None:
        self.websocket._on_loop(self.websocket._detach(self))


def _run_view(match: Any, scope: Mapping[str, Any], receive: Receive, send: Send,
              loop: asyncio.AbstractEventLoop) -> None:
    """The view's thread: Origin, middleware, the view, then the close or the refusal."""
    from django.core import signals
    from django.http import HttpResponseBase

    from ws4redis.exceptions import HandshakeRefused
    from ws4redis.integration.auth import build_request, check_origin
    from ws4redis.integration.hooks import close_db_connections
    from ws4redis.servers.asgi.handshake import environ_of
    from ws4redis.servers.asgi.refusal import deny

    def refuse(status: int, detail: str, headers: list[tuple[str, str]] | None = None) -> None:
        asyncio.run_coroutine_threadsafe(deny(scope, send, status, detail, headers), loop).result()

    environ = environ_of(scope)
    signals.request_started.send(sender=ThreadWebSocket, environ=environ)
    websocket: ThreadWebSocket | None = None
    try:
        try:
            check_origin(environ)
            request = build_request(environ)
        except HandshakeRefused as refusal:
            refuse(refusal.status, refusal.detail, refusal.headers)
            return
        websocket = ThreadWebSocket(request, scope, receive, send, loop)
        request.websocket = websocket  # type: ignore[attr-defined]
        code: int = CloseCode.NORMAL
        reason = ""
        response: Any = None
        try:
            response = match.func(request, *match.args, **match.kwargs)
        except ConnectionClosed as closed:
            code, reason = closed.code, closed.reason
        except Exception:
            logger.exception("ws4redis: websocket view %s failed", match.view_name or match.func)
            if not websocket.accepted:
                refuse(500, "internal error")
                return
            code, reason = CloseCode.INTERNAL_ERROR, "internal error"
        if not websocket.accepted:
            websocket.closed = True
            if isinstance(response, HttpResponseBase):
                body = response.content.decode("utf-8", "replace").strip() if hasattr(response, "content") else ""
                refuse(response.status_code, body or response.reason_phrase)
            else:
                refuse(500, "the view neither accepted nor answered")
            return
        websocket.close(code, reason)
    finally:
        if websocket is not None and not websocket.closed:
            websocket.close(CloseCode.INTERNAL_ERROR, "internal error")
        close_db_connections()
        signals.request_finished.send(sender=ThreadWebSocket)


async def serve_view(match: Any, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
    """Run the view in a thread of its own and wait for it (the connect message was received already)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        error: BaseException | None = None
        try:
            _run_view(match, scope, receive, send, loop)
        except BaseException as exc:  # reported to the awaiting task, never lost in the thread
            error = exc
        loop.call_soon_threadsafe(_settle, done, error)

    threading.Thread(target=run, name=f"ws4redis-view-{match.view_name or 'view'}", daemon=True).start()
    await asyncio.shield(done)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
