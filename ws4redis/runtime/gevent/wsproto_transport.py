"""The wsproto transport: RFC 6455 by ``wsproto`` on the socket's descriptor, for every server (uWSGI included).

wsproto does all the framing (masking checks, fragmentation, UTF-8 validation of text and close reasons, close
codes); this module only moves bytes between it and the socket and applies the limits ws4redis promises:

- a message larger than ``max_message_size`` closes with 1009 as soon as the buffered part exceeds it, so a client
  cannot make the server buffer an unbounded message;
- invalid UTF-8 in a text message closes with 1007 and an unmasked client frame with 1002 (wsproto decides both);
- a ping is answered at once; when the peer has been silent for ``ping_interval`` seconds we ping it, and a peer
  that does not answer within ``ping_timeout`` is dropped (1006), so dead TCP peers do not hold memory for hours;
- control frames (ping, pong) and the client's requests that are not publishes (``allow_request``) share one token
  bucket per socket (``control_rate``/``control_burst``); past it the socket is closed with 1008, counted and
  logged, so a ping flood costs the worker a bounded amount of work;
- one ``receive_nowait`` call parses at most ``_FRAMES_PER_CALL`` frames: a client writing frames as fast as it can
  (pings, tiny fragments) leaves the rest buffered (``pending``) while the connection loop lets the other sockets
  have their turn, instead of holding the worker until its socket runs dry.

Reads never block: the connection loop waits for readability itself, then calls ``receive_nowait`` until it returns
``None``. Sends may come from a second greenlet (a graceful shutdown), so they are serialised by a semaphore.

Once accepted, the transport works on its own duplicate of the socket's descriptor: the server (gevent's pywsgi, or
uWSGI) closes its own descriptor when the request returns, and the websocket lives on. That is what lets an idle
connection give its greenlet back (``ws4redis.runtime.gevent.connection``): an idle websocket is a few objects and a
watcher, not a
parked request.

An idle websocket is most of what a busy server holds, so this object is kept small (bench/, tracemalloc): slotted;
the descriptor itself rather than a gevent socket (whose two watchers are never used here: the connection watches
readability, and a full socket buffer is waited for with ``gevent.socket.wait_write``); every frame we send encoded
by one shared, stateless wsproto encoder (``ws4redis.runtime.gevent.framing``); and wsproto's parser for the peer's
frames made
when bytes arrive and let go again once it holds nothing (a complete message or control frame, an empty buffer).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent.lock
import gevent.monkey
import gevent.socket
from wsproto.connection import ConnectionState
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, ParseFailed
from wsproto.utilities import generate_accept_token

from ws4redis import metrics
from ws4redis.core.limits import TokenBucket
from ws4redis.exceptions import CloseCode, ConnectionClosed
from ws4redis.protocol import protocol_for
from ws4redis.runtime.gevent.framing import close_frame, encode_frame, ping_frame, pong_frame

__all__ = ["UPGRADED_KEY", "TransportOptions", "WsprotoTransport", "close_now", "options_from_settings"]

logger = logging.getLogger("ws4redis.transports.wsproto")  # its name before the move: logging configurations keep it

#: Set in the WSGI environ once the 101 response went out: the server must then write nothing more on the socket
#: (``ws4redis.servers.gevent_server`` reads the same key).
UPGRADED_KEY = "ws4redis.upgraded"

_READ_SIZE = 65536
# Frames parsed per receive_nowait call at most (bench: a 64 KB read of empty pings is ten thousand frames, tens of
# milliseconds of parsing and answering during which no other socket of the worker is served).
_FRAMES_PER_CALL = 64
# Bytes read while waiting for the peer's answer to our close; a peer still flooding past that is just dropped.
_CLOSING_READ_LIMIT = 4 * _READ_SIZE
# Codes that must never appear in a close frame (RFC 6455 section 7.4.1): the socket is just dropped.
_UNSENDABLE = frozenset({1005, 1006, 1015})
_OPEN, _LOCAL_CLOSING, _REMOTE_CLOSING, _CLOSED = (
    ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING, ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED,
)


_os_close = gevent.monkey.get_original("os", "close")
_PING = ping_frame(b"ws4redis")  # every liveness ping is the same bytes: encoded once


def close_now(fd: int) -> None:
    """Close ``fd`` at once. gevent's patched ``os.close`` (25.8+) defers the close to after the event loop's next
    poll, which in a quiet process may be never: the peer would wait for our FIN. Callers have no watcher active on
    ``fd`` (``Connection._end`` stops its watchers first; ``wait_read``/``wait_write`` close theirs), which is what
    the deferral guards against."""
    try:
        _os_close(fd)
    except OSError:
        pass


def _lone_pong(data: bytes) -> bool:
    """Whether ``data``, one read of a parked socket, is exactly one complete pong: wsproto's frame decoder parses and
    checks it (a decoder of its own, dropped after: a parked socket keeps no parser; the decoder alone, without the
    message layer a pong does not need, costs less than half of a ``FrameProtocol``, and 100,000 idle sockets answer a
    ping every 20-30 s), and nothing is left after that frame, since bytes left in a dropped decoder would be lost."""
    decoder = FrameDecoder(client=False, extensions=[])
    decoder.receive_bytes(data)
    try:
        frame = decoder.process_buffer()
    except ParseFailed:
        return False  # the connection's own parser meets it again and closes with wsproto's code
    return frame is not None and frame.opcode is Opcode.PONG and frame.frame_finished and not len(decoder.buffer)


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """The transport's limits and liveness timers: one object shared by every websocket of a worker."""

    max_message_size: int
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    send_timeout: float = 30.0
    close_timeout: float = 2.0
    control_rate: float | None = 10.0  # control frames and non-publish requests per second (None: no limit)
    control_burst: float = 50.0


_cached_options: tuple[tuple[Any, ...], TransportOptions] | None = None


def options_from_settings() -> TransportOptions:
    """The transport's options from the settings, the same on every server (one object while they do not change)."""
    global _cached_options
    from ws4redis import settings

    raw = tuple(settings.get(name) for name in (
        "WS4REDIS_MAX_MESSAGE_SIZE", "WS4REDIS_PING_INTERVAL", "WS4REDIS_PING_TIMEOUT", "WS4REDIS_CONTROL_RATE",
        "WS4REDIS_CONTROL_BURST",
    ))
    if _cached_options is None or _cached_options[0] != raw:
        size, interval, timeout, rate, burst = raw
        _cached_options = raw, TransportOptions(
            max_message_size=int(size),
            ping_interval=20.0 if interval is None else float(interval),
            ping_timeout=20.0 if timeout is None else float(timeout),
            control_rate=float(rate) if rate else None,
            control_burst=float(burst),
        )
    return _cached_options[1]


class WsprotoTransport:
    """One websocket on a socket whose HTTP upgrade request was already parsed by the server."""

    __slots__ = (  # __weakref__: the gevent server keeps its live transports in a WeakSet
        "__weakref__", "_backlog", "_budget", "_closed", "_control", "_deferred_close", "_drain_deadline", "_environ",
        "_fd", "_key", "_last_heard", "_lock", "_messages", "_options", "_parser", "_partial", "_partial_size",
        "_ping_sent", "_sent_close", "_server_sock", "_state", "_unparsed", "accepted", "last_text", "on_closed",
        "subprotocol",
    )

    def __init__(
        self, sock: socket.socket | None, environ: dict[str, Any], key: str, options: TransportOptions
    ) -> None:
        self._server_sock = sock  # the server's socket: the 101 goes out on it, then adopt() takes a duplicate
        self._fd = sock.fileno() if sock is not None else -1
        self._environ: dict[str, Any] | None = environ
        self._key = key
        self._options = options
        self._state = _OPEN
        self._parser: FrameProtocol | None = None  # wsproto's parser of the peer's frames, while it holds anything
        self._lock = gevent.lock.Semaphore()
        # Complete messages not yet taken by receive_nowait, each with whether it came as text.
        self._messages: list[tuple[bytes, bool]] | None = None
        self._partial: list[bytes] | None = None  # the received part of a fragmented message
        self._partial_size = 0
        self._last_heard = time.monotonic()
        self._ping_sent: float | None = None
        self._closed: ConnectionClosed | None = None  # set once the websocket is over (either side)
        self._deferred_close: Any = None  # the peer's close, read with messages before it that are not yet taken
        self._sent_close: ConnectionClosed | None = None
        self._drain_deadline: float | None = None  # after a server-initiated shutdown: when to stop waiting
        self._backlog = b""  # the unwritten end of a send_nowait: goes out before anything else
        self._control: TokenBucket | None = None  # made by the first control frame or request: most never send one
        self._unparsed = False  # frames are left in the parser's buffer: this call's frame budget was spent
        self._budget = _FRAMES_PER_CALL
        self.subprotocol: str | None = None
        self.last_text = True  # whether the message receive_nowait returned last came in text frames
        self.accepted = False  # True once accepted: only then may frames be sent
        self.on_closed: Callable[[WsprotoTransport], None] | None = None  # told once, when the socket is closed

    # -- Transport ---------------------------------------------------------------------------------------------
    def accept(self, subprotocol: str | None) -> None:
        """Write the 101 response. The request itself was validated by ``ws4redis.integration.auth.check_upgrade``."""
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
        self._fd = os.dup(fd)
        os.set_blocking(self._fd, False)  # (shared with the server's descriptor, which gevent made non-blocking too)
        self.subprotocol = subprotocol
        self.accepted = True
        self._last_heard = time.monotonic()

    def fileno(self) -> int:
        return self._fd

    def receive_nowait(self) -> bytes | None:
        """One complete data message, or ``None`` when no complete message is buffered and the socket is empty, or
        when this call's frame budget is spent with frames still buffered (``pending``: call again after yielding)."""
        self._budget = _FRAMES_PER_CALL
        while True:
            if self._messages:
                message, self.last_text = self._messages.pop(0)
                return message
            if self._deferred_close is not None:
                code, reason = self._deferred_close
                self._deferred_close = None
                self._peer_closed(code, reason)
            if self._closed is not None:
                raise self._closed
            if self._unparsed:
                if self._budget <= 0:
                    return None
                self._take_frames()
                continue
            self._check_liveness()
            try:
                data = os.read(self._fd, _READ_SIZE)  # the fd is non-blocking; never waits
            except BlockingIOError:
                self._release_parser()
                return None
            except OSError as exc:
                raise self._lost(str(exc)) from exc
            if not data:
                raise self._lost("peer closed the TCP connection")
            self._last_heard = time.monotonic()
            self._parse(data)

    def send(self, data: bytes, *, text: bool) -> None:
        self.send_raw(encode_frame(data, text=text))

    def send_raw(self, frames: bytes) -> None:
        """Frames already encoded by ``ws4redis.runtime.gevent.framing``: a whole queue in one write."""
        if self._closed is not None:
            raise self._closed
        if self._state is not _OPEN:
            raise ConnectionClosed(1006, "websocket is closing")
        self._sendall(frames)

    def send_nowait(self, frames: bytes) -> bool:
        """Write encoded frames at once if the socket takes them, from any greenlet (the hub's fan-out), never waiting.

        Returns ``False``, having written nothing, when the frames must instead wait for the connection's own
        greenlet: the websocket is closing, another send is under way or left a backlog, or the socket buffer is
        full. When only part fits, the rest is kept and goes out first with the next send, so frames are never
        interleaved or reordered.
        """
        if self._closed is not None or self._backlog or self._lock.locked() or not self.accepted:
            return False
        if self._state is not _OPEN:
            return False
        try:
            written = os.write(self._fd, frames)
        except OSError:  # full (EAGAIN) or broken: the connection's greenlet sends it, or finds out why it cannot
            return False
        if written < len(frames):
            self._backlog = frames[written:]
        return True

    @property
    def pending(self) -> bool:
        """Whether received frames wait in the parser's buffer: ``receive_nowait`` has more without any new read, so
        the caller must call it again (after letting the other sockets have a turn), not wait for readability."""
        return self._unparsed

    def allow_request(self) -> bool:
        """Spend one token of the socket's allowance for control frames and requests (``control_rate``); ``False``
        once it is exhausted. The connection calls it for each client message that is not a publish."""
        rate = self._options.control_rate
        if rate is None:
            return True
        if self._control is None:
            self._control = TokenBucket(rate, self._options.control_burst)
        return self._control.take(time.monotonic())

    @property
    def backlog(self) -> bool:
        """Whether part of a ``send_nowait`` is still unwritten (any send, even ``send_raw(b"")``, writes it first)."""
        return bool(self._backlog)

    def close(self, code: int, reason: str = "") -> None:
        """Finish the closing handshake where one is possible, then close the socket. Never raises."""
        try:
            if self._state is _OPEN and code not in _UNSENDABLE and self.accepted:
                self._send_close(code, reason)
            if self._state is _LOCAL_CLOSING and code == CloseCode.POLICY_VIOLATION:
                self._discard_until_closed()  # a flooding client's frames are not even parsed any more
            elif self._state is _LOCAL_CLOSING:
                self._await_peer_close()
        except (ConnectionClosed, OSError):
            pass
        finally:
            self._closed = self._closed or ConnectionClosed(code, reason)
            if self.accepted and self._fd >= 0:  # the duplicate is ours; the server closes its own descriptor
                fd, self._fd = self._fd, -1
                close_now(fd)
            self._parser = None
            on_closed, self.on_closed = self.on_closed, None
            if on_closed is not None:
                on_closed(self)

    # -- used by the server for a graceful shutdown (from another greenlet) --------------------------------------
    def shutdown(self, reconnect_in_ms: int, *, grace: float) -> bool:
        """Tell the client to come back in ``reconnect_in_ms``: a ws4redis.v2 control message, then close 1001.

        The connection loop notices the close when the peer answers it (or at its next idle wake-up) and ends.
        Returns whether this websocket was open and got the notice.
        """
        if not self.accepted or self._state is not _OPEN:
            return False
        try:
            notice = protocol_for(self.subprotocol, heartbeat=None).control("shutdown", reconnect_in=reconnect_in_ms)
            if notice is not None:  # ws4redis.v2 only; a legacy client learns it from the close reason
                data, text = notice
                self._sendall(encode_frame(data, text=text))
            reason = f"reconnect_in={reconnect_in_ms}"
            self._send_close(CloseCode.GOING_AWAY, reason)
            self._sent_close = ConnectionClosed(CloseCode.GOING_AWAY, reason)
        except (ConnectionClosed, OSError):
            return False
        self._drain_deadline = time.monotonic() + grace
        return True

    # -- inside --------------------------------------------------------------------------------------------------
    def _parse(self, data: bytes) -> None:
        """Feed the peer's bytes to wsproto's parser and act on the frames it completes (``_take_frames``)."""
        parser = self._parser
        if parser is None:
            parser = self._parser = FrameProtocol(client=False, extensions=[])
        parser.receive_bytes(data)
        self._take_frames()

    def _take_frames(self) -> None:
        """Act on buffered frames until none is complete or this call's budget is spent (``_unparsed`` then).

        Stopping mid-buffer is safe: wsproto's ``received_frames`` resumes one parsing generator per parser.
        """
        parser = self._parser
        self._unparsed = False
        if parser is None:
            return
        try:
            for frame in parser.received_frames():
                self._budget -= 1
                opcode = frame.opcode
                if opcode is Opcode.PING or opcode is Opcode.PONG:
                    if self._state is not _OPEN:
                        pass  # closing: no answer is due, and none is counted
                    elif not self.allow_request():
                        self._over_control_limit()
                    elif opcode is Opcode.PING:
                        assert isinstance(frame.payload, (bytes, bytearray))  # control frames carry bytes
                        self._sendall(pong_frame(frame.payload))
                    else:
                        self._ping_sent = None
                elif opcode is Opcode.CLOSE:
                    if self._messages:
                        # A message and the close in one read: the message is handed out (and published) first,
                        # then the close is answered; nothing the peer sends after its close counts.
                        self._deferred_close = frame.payload
                        return
                    self._peer_closed(*frame.payload)
                else:  # TEXT, BINARY, CONTINUATION: a message or part of one
                    self._collect(frame.payload, frame.message_finished)
                if self._budget <= 0:
                    self._unparsed = True  # the rest waits for the next call: others' turn first
                    return
        except ParseFailed as exc:  # wsproto's verdict: bad UTF-8 -> 1007, unmasked frame -> 1002, ...
            self._fail(int(exc.code), str(exc) or "protocol error")

    def _over_control_limit(self) -> None:
        """Control frames faster than ``control_rate``: a flood, not a liveness check. Closed with 1008."""
        metrics.RATE_LIMITED.labels("control").inc()
        logger.warning(
            "ws4redis: closing a websocket that sent control frames faster than WS4REDIS_CONTROL_RATE (%s/s)",
            self._options.control_rate,
        )
        self._fail(CloseCode.POLICY_VIOLATION, "too many control frames")

    def _release_parser(self) -> None:
        """Let go of the parser once it holds nothing: no part of a frame buffered, no message under way.

        wsproto has no public "idle" query, so this reads two of its attributes; when they are not there (another
        wsproto version) the parser is simply kept, which costs memory and never correctness.
        """
        parser = self._parser
        if parser is None or self._partial or self._unparsed or self._state is not _OPEN:
            return
        decoder = getattr(parser, "_frame_decoder", None)
        buffer = getattr(decoder, "buffer", None)
        message = getattr(parser, "_message_decoder", None)
        if (
            buffer is not None and len(buffer) == 0 and getattr(decoder, "header", True) is None
            and getattr(message, "opcode", True) is None
        ):
            self._parser = None

    def _collect(self, payload: Any, finished: bool) -> None:
        chunk = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        self._partial_size += len(chunk)
        if self._partial_size > self._options.max_message_size:
            # Fail early: never buffer more than the limit, whatever the frame headers announce.
            self._fail(CloseCode.MESSAGE_TOO_BIG, f"message larger than {self._options.max_message_size} bytes")
        if finished and not self._partial:
            message = chunk  # the common case: an unfragmented message, no list at all
        else:
            if self._partial is None:
                self._partial = []
            self._partial.append(chunk)
            if not finished:
                return
            message = b"".join(self._partial)
            self._partial = None
        self._partial_size = 0
        if self._messages is None:
            self._messages = []
        # wsproto hands a text message's frames over as str (decoded and validated), a binary message's as bytes.
        self._messages.append((message, isinstance(payload, str)))

    def _peer_closed(self, code: int, reason: str) -> None:
        if self._state is _OPEN:
            # The peer started the closing handshake: echo its code, as RFC 6455 section 5.5.1 asks.
            self._state = _REMOTE_CLOSING
            self._sendall(close_frame(code, reason))
            self._state = _CLOSED
            code = CloseCode.NORMAL if code == CloseReason.NO_STATUS_RCVD else code
            self._closed = ConnectionClosed(int(code), reason or "")
            raise self._closed
        # The answer to our own close (a shutdown): the websocket ends with the code we sent.
        self._state = _CLOSED
        self._closed = self._sent_close or ConnectionClosed(int(code), reason or "")
        raise self._closed

    def _fail(self, code: int, reason: str) -> None:
        """_Fail the WebSocket Connection_: send our close and stop reading (the stream can no longer be trusted)."""
        logger.info("ws4redis: closing websocket with %d: %s", code, reason)
        try:
            if self._state is _OPEN:
                self._send_close(code, reason[:120])
        except (ConnectionClosed, OSError):
            pass
        self._closed = ConnectionClosed(code, reason)
        raise self._closed

    def idle_check(self, now: float) -> bool:
        """The periodic liveness check of a parked websocket (``ws4redis.runtime.gevent.idle``), without a read or a
        wait.

        A peer silent for ``ping_interval`` is pinged here if the socket takes the ping at once. Returns ``True``
        when the connection's greenlet must run instead: a pong (or a shutdown's close answer) is overdue, the ping
        could not be written now, or the websocket is not plainly open. A control allowance that has filled up
        again is let go (a new one starts full: the same limit), so a pong every ping interval keeps no bucket per
        idle socket."""
        if self._closed is not None or self._drain_deadline is not None or self._state is not _OPEN:
            return True
        if self._unparsed or self._backlog or self._messages or self._deferred_close is not None:
            return True
        control = self._control
        if control is not None and control.full(now):
            self._control = None
        if self._ping_sent is not None:
            return now - self._ping_sent > self._options.ping_timeout
        if now - self._last_heard > self._options.ping_interval:
            if not self.send_nowait(_PING):
                return True
            self._ping_sent = now
            return bool(self._backlog)
        return False

    def take_nowait(self) -> bool:
        """Read what a parked websocket's peer sent, from the event loop itself (the readability watcher), never
        waiting and never writing. ``True``: it was all handled here, which is the common case of an idle socket, the
        pong that answers our ping (one read, no parser, no greenlet). ``False``: the connection's greenlet must run
        ``receive_nowait``, which finds what was read here in the parser (every other frame: wsproto decides, answers
        and counts as always), or the end of the stream again."""
        if self._parser is not None or self._messages or self._unparsed or self._state is not _OPEN:
            return False
        if self._closed is not None or self._deferred_close is not None or self._drain_deadline is not None:
            return False
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return True  # nothing after all
        except OSError:
            return False  # the greenlet's read meets the error again and ends the websocket
        if not data:
            return False  # end of stream: read again (and seen) by the greenlet
        self._last_heard = time.monotonic()
        if _lone_pong(data) and self.allow_request():
            self._ping_sent = None
            return True
        # Anything else (a message, a ping, a close, a pong past the control allowance, bytes wsproto refuses): the
        # connection's parser takes it in the greenlet, which answers, counts or closes as always; the allowance is not
        # spent twice for a refused pong, since it was empty.
        parser = self._parser = FrameProtocol(client=False, extensions=[])
        parser.receive_bytes(data)
        self._unparsed = True
        return False

    def _check_liveness(self) -> None:
        now = time.monotonic()
        if self._drain_deadline is not None and now > self._drain_deadline:
            raise self._lost("no close answer after shutdown")
        if self._ping_sent is not None:
            if now - self._ping_sent > self._options.ping_timeout:
                raise self._lost(f"no pong within {self._options.ping_timeout:g}s")
        elif now - self._last_heard > self._options.ping_interval and self._state is _OPEN:
            self._ping_sent = now
            self._sendall(_PING)

    def _lost(self, reason: str) -> ConnectionClosed:
        self._closed = ConnectionClosed(CloseCode.GOING_AWAY if self._drain_deadline else 1006, reason)
        return self._closed

    def _send_close(self, code: int, reason: str) -> None:
        """Our close frame; from here on only the peer's close answer is awaited."""
        self._sendall(close_frame(code, reason))
        self._state = _LOCAL_CLOSING

    def _sendall(self, data: bytes) -> None:
        """Write everything, waiting for room at most ``send_timeout`` at a time: a peer that stopped reading."""
        with self._lock:
            if self._backlog:  # what an earlier send_nowait left goes first
                data, self._backlog = self._backlog + data, b""
            view = memoryview(data)
            try:
                while view:
                    try:
                        view = view[os.write(self._fd, view):]
                    except BlockingIOError:
                        gevent.socket.wait_write(self._fd, self._options.send_timeout)
            except OSError as exc:  # includes the send timeout (socket.timeout) and a closed descriptor
                raise self._lost(f"send failed: {exc}") from exc

    def _discard_until_closed(self) -> None:
        """After closing a flooding client (1008): say we are done (FIN after our close frame), then drop its bytes
        unread until it closes or ``close_timeout`` passes. Reading them, slowly, rather than closing at once keeps
        the close frame from being lost to the TCP reset that closing a socket with unread input sends."""
        try:
            sock = socket.socket(fileno=self._fd)
            try:
                sock.shutdown(socket.SHUT_WR)
            finally:
                sock.detach()  # the descriptor stays ours, closed by close()
        except OSError:
            return
        deadline = time.monotonic() + self._options.close_timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if not os.read(self._fd, _READ_SIZE):
                    return
            except BlockingIOError:
                gevent.socket.wait_read(self._fd, left)
                continue
            except OSError:
                return
            gevent.sleep(min(0.01, left))  # at most 64 KB per 10 ms: a flooder is throttled, not served

    def _await_peer_close(self) -> None:
        """Read until the peer's close frame arrives or ``close_timeout`` passes (a clean TCP close then)."""
        if self._deferred_close is not None:  # the peer's close was read already, behind messages
            self._deferred_close = None
            self._state = _CLOSED
            return
        deadline = time.monotonic() + self._options.close_timeout
        read = 0
        while self._state is _LOCAL_CLOSING and read < _CLOSING_READ_LIMIT:  # a peer still flooding is just dropped
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._unparsed:  # frames are only skipped here (no answer, no count), a budget at a time
                self._budget = _FRAMES_PER_CALL
                try:
                    self._take_frames()
                except ConnectionClosed:
                    return
                self._messages = None
                gevent.sleep(0)
                continue
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                gevent.socket.wait_read(self._fd, left)
                continue
            if not data:
                return
            read += len(data)
            try:
                self._budget = _FRAMES_PER_CALL
                self._parse(data)  # data after our close is discarded; the close answer moves the state to CLOSED
            except ConnectionClosed:
                return
            self._messages = None
            gevent.sleep(0)  # the others' turn between reads
