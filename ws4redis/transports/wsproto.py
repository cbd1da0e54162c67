"""The wsproto transport: RFC 6455 by ``wsproto`` over a gevent socket, for every server that is not uWSGI.

wsproto does all the framing (masking checks, fragmentation, UTF-8 validation of text and close reasons, close
codes); this module only moves bytes between it and the socket and applies the limits ws4redis promises:

- a message larger than ``max_message_size`` closes with 1009 as soon as the buffered part exceeds it, so a client
  cannot make the server buffer an unbounded message;
- invalid UTF-8 in a text message closes with 1007 and an unmasked client frame with 1002 (wsproto decides both);
- a ping is answered at once; when the peer has been silent for ``ping_interval`` seconds we ping it, and a peer
  that does not answer within ``ping_timeout`` is dropped (1006), so dead TCP peers do not hold memory for hours.

Reads never block: the connection loop waits for readability itself, then calls ``receive_nowait`` until it returns
``None``. Sends may come from a second greenlet (a graceful shutdown), so they are serialised by a lock.

Once accepted, the transport works on its own duplicate of the socket's descriptor: the server (gevent's pywsgi, or
uWSGI) closes its own descriptor when the request returns, and the websocket lives on. That is what lets an idle
connection give its greenlet back (``ws4redis.connection``): an idle websocket is a few objects and a watcher, not a
parked request.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent.lock
import gevent.socket
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

from ws4redis.exceptions import CloseCode, ConnectionClosed
from ws4redis.protocol import protocol_for

__all__ = ["UPGRADED_KEY", "WsprotoTransport", "options_from_settings"]

logger = logging.getLogger(__name__)

#: Set in the WSGI environ once the 101 response went out: the server must then write nothing more on the socket
#: (``ws4redis.server`` reads the same key).
UPGRADED_KEY = "ws4redis.upgraded"

_READ_SIZE = 65536
# Codes that must never appear in a close frame (RFC 6455 section 7.4.1): the socket is just dropped.
_UNSENDABLE = frozenset({1005, 1006, 1015})


def options_from_settings() -> dict[str, Any]:
    """The transport's limits and liveness timers from the settings, the same on every server."""
    from ws4redis import settings

    def option(name: str, default: float) -> float:
        value = settings.get(name)
        return float(default if value is None else value)

    return {
        "max_message_size": int(settings.get("WS4REDIS_MAX_MESSAGE_SIZE")),
        "ping_interval": option("WS4REDIS_PING_INTERVAL", 20.0),
        "ping_timeout": option("WS4REDIS_PING_TIMEOUT", 20.0),
    }


class WsprotoTransport:
    """One websocket on a gevent socket whose HTTP upgrade request was already parsed by the server."""

    def __init__(
        self,
        sock: socket.socket | None,
        environ: dict[str, Any],
        key: str,
        *,
        max_message_size: int,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        send_timeout: float = 30.0,
        close_timeout: float = 2.0,
    ) -> None:
        self._server_sock = sock  # the server's socket: the 101 goes out on it, then adopt() takes a duplicate
        self._sock: socket.socket | None = None
        self._fd = sock.fileno() if sock is not None else -1
        self._environ: dict[str, Any] | None = environ
        self._key = key
        self._max = max_message_size
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._ws = WsConnection(ConnectionType.SERVER)
        self._lock = gevent.lock.RLock()
        self._messages: list[bytes] = []  # rarely more than one; an empty deque would be 760 B per socket
        self._partial: list[bytes] = []
        self._partial_size = 0
        self._last_heard = time.monotonic()
        self._ping_sent: float | None = None
        self._closed: ConnectionClosed | None = None  # set once the websocket is over (either side)
        self._sent_close: ConnectionClosed | None = None
        self._drain_deadline: float | None = None  # after a server-initiated shutdown: when to stop waiting
        self._backlog = b""  # the unwritten end of a send_nowait: goes out before anything else
        self.subprotocol: str | None = None
        self.accepted = False  # True once accepted: only then may frames be sent
        self.on_closed: Callable[[WsprotoTransport], None] | None = None  # told once, when the socket is closed

    # -- Transport ---------------------------------------------------------------------------------------------
    def accept(self, subprotocol: str | None) -> None:
        """Write the 101 response. The request itself was validated by ``ws4redis.auth.check_upgrade``."""
        accept = generate_accept_token(self._key.encode("ascii")).decode("ascii")
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept}",
        ]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        if self._environ is not None:
            self._environ[UPGRADED_KEY] = True  # from here on the HTTP server must not answer this request
        assert self._server_sock is not None
        try:
            self._server_sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        except OSError as exc:
            raise ConnectionClosed(1006, f"handshake failed: {exc}") from exc
        self.adopt(self._fd, subprotocol)

    def adopt(self, fd: int, subprotocol: str | None) -> None:
        """Carry on the upgraded websocket on a duplicate of ``fd``, which the server may close when it likes."""
        self._environ = self._server_sock = None  # the request's: not kept for the websocket's lifetime
        self._sock = gevent.socket.socket(fileno=os.dup(fd))
        self._fd = self._sock.fileno()
        self._sock.settimeout(self._send_timeout)
        self.subprotocol = subprotocol
        self.accepted = True
        self._last_heard = time.monotonic()

    def fileno(self) -> int:
        return self._fd

    def receive_nowait(self) -> bytes | None:
        """One complete data message, or ``None`` when no complete message is buffered and the socket is empty."""
        while True:
            if self._messages:
                return self._messages.pop(0)
            if self._closed is not None:
                raise self._closed
            self._check_liveness()
            try:
                data = os.read(self._fd, _READ_SIZE)  # the fd is non-blocking (gevent); never waits
            except BlockingIOError:
                return None
            except OSError as exc:
                raise self._lost(str(exc)) from exc
            if not data:
                raise self._lost("peer closed the TCP connection")
            self._last_heard = time.monotonic()
            self._ws.receive_data(data)
            for event in self._ws.events():
                self._handle(event)

    def send(self, data: bytes, *, text: bool) -> None:
        if self._closed is not None:
            raise self._closed
        self._send_event(TextMessage(data=data.decode("utf-8")) if text else BytesMessage(data=data))

    def send_raw(self, frames: bytes) -> None:
        """Frames already encoded by ``ws4redis.framing``: a whole queue in one write.

        No extension is negotiated here, so they are byte for byte what wsproto's own ``send`` would write.
        """
        if self._closed is not None:
            raise self._closed
        if self._ws.state is not ConnectionState.OPEN:
            raise ConnectionClosed(1006, "websocket is closing")
        self._sendall(frames)

    def send_nowait(self, frames: bytes) -> bool:
        """Write encoded frames at once if the socket takes them, from any greenlet (the hub's fan-out), never waiting.

        Returns ``False``, having written nothing, when the frames must instead wait for the connection's own
        greenlet: the websocket is closing, another send is under way or left a backlog, or the socket buffer is
        full. When only part fits, the rest is kept and goes out first with the next send (``flush``), so frames
        are never interleaved or reordered.
        """
        if self._closed is not None or self._backlog or self._lock.locked() or self._sock is None:
            return False
        if self._ws.state is not ConnectionState.OPEN:
            return False
        try:
            written = os.write(self._fd, frames)
        except OSError:  # full (EAGAIN) or broken: the connection's greenlet sends it, or finds out why it cannot
            return False
        if written < len(frames):
            self._backlog = frames[written:]
        return True

    @property
    def backlog(self) -> bool:
        """Whether part of a ``send_nowait`` is still unwritten (any send, even ``send_raw(b"")``, writes it first)."""
        return bool(self._backlog)

    def close(self, code: int, reason: str = "") -> None:
        """Finish the closing handshake where one is possible, then close the socket. Never raises."""
        try:
            if self._ws.state is ConnectionState.OPEN and code not in _UNSENDABLE:
                self._send_event(CloseConnection(code=code, reason=reason))
            if self._ws.state is ConnectionState.LOCAL_CLOSING:
                self._await_peer_close()
        except (ConnectionClosed, OSError, LocalProtocolError, RemoteProtocolError):
            pass
        finally:
            self._closed = self._closed or ConnectionClosed(code, reason)
            if self._sock is not None:  # the duplicate is ours; the server closes its own socket
                try:
                    self._sock.close()
                except OSError:
                    pass
            on_closed, self.on_closed = self.on_closed, None
            if on_closed is not None:
                on_closed(self)

    # -- used by the server for a graceful shutdown (from another greenlet) --------------------------------------
    def shutdown(self, reconnect_in_ms: int, *, grace: float) -> bool:
        """Tell the client to come back in ``reconnect_in_ms``: a ws4redis.v2 control message, then close 1001.

        The connection loop notices the close when the peer answers it (or at its next idle wake-up) and ends.
        Returns whether this websocket was open and got the notice.
        """
        if not self.accepted or self._ws.state is not ConnectionState.OPEN:
            return False
        try:
            notice = protocol_for(self.subprotocol, heartbeat=None).control("shutdown", reconnect_in=reconnect_in_ms)
            if notice is not None:  # ws4redis.v2 only; a legacy client learns it from the close reason
                data, text = notice
                self._send_event(TextMessage(data=data.decode()) if text else BytesMessage(data=data))
            reason = f"reconnect_in={reconnect_in_ms}"
            self._send_event(CloseConnection(code=CloseCode.GOING_AWAY, reason=reason))
            self._sent_close = ConnectionClosed(CloseCode.GOING_AWAY, reason)
        except (ConnectionClosed, OSError, LocalProtocolError):
            return False
        self._drain_deadline = time.monotonic() + grace
        return True

    # -- inside --------------------------------------------------------------------------------------------------
    def _handle(self, event: Event) -> None:
        if isinstance(event, Message):
            self._collect(event)
        elif isinstance(event, Ping):
            self._send_event(event.response())
        elif isinstance(event, Pong):
            self._ping_sent = None
        elif isinstance(event, CloseConnection):
            self._peer_closed(event)

    def _collect(self, event: Message[Any]) -> None:
        chunk = event.data.encode("utf-8") if isinstance(event, TextMessage) else bytes(event.data)
        self._partial_size += len(chunk)
        if self._partial_size > self._max:
            # Fail early: never buffer more than the limit, whatever the frame headers announce.
            self._fail(CloseCode.MESSAGE_TOO_BIG, f"message larger than {self._max} bytes")
        self._partial.append(chunk)
        if event.message_finished:
            self._messages.append(b"".join(self._partial))
            self._partial.clear()
            self._partial_size = 0

    def _peer_closed(self, event: CloseConnection) -> None:
        if self._ws.state is ConnectionState.REMOTE_CLOSING:
            # The peer started the closing handshake: echo its code, as RFC 6455 section 5.5.1 asks.
            self._send_event(event.response())
            code = event.code if event.code not in (CloseReason.NO_STATUS_RCVD,) else CloseCode.NORMAL
            self._closed = ConnectionClosed(int(code), event.reason or "")
            raise self._closed
        if self._ws.state is ConnectionState.CLOSED:
            # The answer to our own close (a shutdown): the websocket ends with the code we sent.
            self._closed = self._sent_close or ConnectionClosed(int(event.code), event.reason or "")
            raise self._closed
        # Still OPEN: wsproto reports a protocol violation (bad UTF-8 -> 1007, unmasked frame -> 1002, ...).
        self._fail(int(event.code), event.reason or "protocol error")

    def _fail(self, code: int, reason: str) -> None:
        """_Fail the WebSocket Connection_: send our close and stop reading (the stream can no longer be trusted)."""
        logger.info("ws4redis: closing websocket with %d: %s", code, reason)
        try:
            if self._ws.state is ConnectionState.OPEN:
                self._send_event(CloseConnection(code=code, reason=reason[:120]))
        except (ConnectionClosed, OSError, LocalProtocolError):
            pass
        self._closed = ConnectionClosed(code, reason)
        raise self._closed

    def _check_liveness(self) -> None:
        now = time.monotonic()
        if self._drain_deadline is not None and now > self._drain_deadline:
            raise self._lost("no close answer after shutdown")
        if self._ping_sent is not None:
            if now - self._ping_sent > self._ping_timeout:
                raise self._lost(f"no pong within {self._ping_timeout:g}s")
        elif now - self._last_heard > self._ping_interval and self._ws.state is ConnectionState.OPEN:
            self._ping_sent = now
            self._send_event(Ping(payload=b"ws4redis"))

    def _lost(self, reason: str) -> ConnectionClosed:
        self._closed = ConnectionClosed(CloseCode.GOING_AWAY if self._drain_deadline else 1006, reason)
        return self._closed

    def _send_event(self, event: Event) -> None:
        with self._lock:
            try:
                data = self._ws.send(event)
            except LocalProtocolError as exc:
                raise ConnectionClosed(self._closed.code if self._closed else 1006, str(exc)) from exc
            self._sendall(data)

    def _sendall(self, data: bytes) -> None:
        try:
            with self._lock:
                if self._backlog:  # what an earlier send_nowait left goes first
                    data, self._backlog = self._backlog + data, b""
                self._socket().sendall(data)
        except OSError as exc:  # includes the send timeout: a peer that stopped reading
            raise self._lost(f"send failed: {exc}") from exc

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionClosed(1006, "websocket not accepted")
        return self._sock

    def _await_peer_close(self) -> None:
        """Read until the peer's close frame arrives or ``close_timeout`` passes (a clean TCP close then)."""
        deadline = time.monotonic() + self._close_timeout
        sock = self._socket()
        sock.settimeout(self._close_timeout)
        while self._ws.state is ConnectionState.LOCAL_CLOSING and time.monotonic() < deadline:
            data = sock.recv(_READ_SIZE)
            if not data:
                return
            self._ws.receive_data(data)
            for _event in self._ws.events():
                pass  # data after our close is discarded; the close answer moves the state to CLOSED
