"""The uWSGI transport: uWSGI's own websocket API (``uwsgi.websocket_*``), run under its gevent loop engine.

uWSGI's calls act on the request of the greenlet that makes them, so only the connection's own greenlet may call
them. Pings and pongs are handled inside ``websocket_recv_nb``, which the loop therefore calls at least every
``WS4REDIS_WAKE_INTERVAL`` seconds. uWSGI has no API to send a close code.
"""

from __future__ import annotations

from typing import Any

import gevent.socket

from ws4redis.exceptions import ConnectionClosed

__all__ = ["UwsgiTransport"]


def _uwsgi() -> Any:
    import uwsgi  # only importable inside a uWSGI process

    return uwsgi


class UwsgiTransport:
    """A websocket on the current uWSGI request."""

    sends_close_codes = False

    def __init__(self, environ: dict[str, Any], key: str) -> None:
        self._uwsgi = _uwsgi()
        self._key = key
        self._origin = environ.get("HTTP_ORIGIN", "")
        self._fd = -1
        self._socket: gevent.socket.socket | None = None

    def accept(self, subprotocol: str | None) -> None:
        try:
            self._uwsgi.websocket_handshake(self._key, self._origin, subprotocol or "")
        except OSError as exc:
            raise ConnectionClosed(1006, f"handshake failed: {exc}") from exc
        self._fd = self._uwsgi.connection_fd()
        # The same fd, for writing frames that are already encoded (send_raw); uWSGI keeps owning it (detach()).
        self._socket = gevent.socket.socket(fileno=self._fd)
        self._socket.settimeout(30.0)  # uWSGI's own socket timeout under gevent: a peer that reads nothing fails

    def fileno(self) -> int:
        return self._fd

    def receive_nowait(self) -> bytes | None:
        try:
            message = self._uwsgi.websocket_recv_nb()
        except OSError as exc:
            raise ConnectionClosed(1006, str(exc)) from exc
        return bytes(message) if message else None

    def send(self, data: bytes, *, text: bool) -> None:
        try:
            if text:
                self._uwsgi.websocket_send(data)
            else:
                self._uwsgi.websocket_send_binary(data)
        except OSError as exc:
            raise ConnectionClosed(1006, str(exc)) from exc

    def send_raw(self, frames: bytes) -> None:
        """Write complete server frames (``ws4redis.framing``) in one go: one system call for a whole queue."""
        assert self._socket is not None
        try:
            self._socket.sendall(frames)
        except OSError as exc:  # includes socket.timeout
            raise ConnectionClosed(1006, str(exc)) from exc

    def close(self, code: int, reason: str = "") -> None:
        """uWSGI closes the socket when the request returns; it cannot send ``code``."""
        if self._socket is not None:
            self._socket.detach()  # the fd is uWSGI's: never close it here
            self._socket = None
