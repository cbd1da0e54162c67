"""The uWSGI transport: uWSGI answers the upgrade, wsproto carries the websocket on a duplicate of its descriptor.

uWSGI's own websocket calls (``uwsgi.websocket_*``) act on the request of the greenlet that makes them, so with them
every websocket pins a uWSGI request, its buffers and a parked greenlet for as long as it is open (bench/: 23 KB per
idle socket before ws4redis does anything) and can never send a close code. Here uWSGI writes the 101
(``uwsgi.websocket_handshake``, so it knows the response went out), then the websocket continues on
``os.dup(uwsgi.connection_fd())`` with the same wsproto transport as every other server: the request may return
while the websocket stays open, close codes are sent, and pings follow ``WS4REDIS_PING_INTERVAL``/``_TIMEOUT``.

The descriptor must carry the websocket's bytes in clear: TLS is terminated in front of the worker (nginx, or
uWSGI's own ``--https`` router), never by the worker itself (``--https-socket``), which this transport cannot serve
(nothing detects it: the client's handshake then fails).
"""

from __future__ import annotations

from typing import Any

from ws4redis.exceptions import ConnectionClosed
from ws4redis.runtime.gevent.wsproto_transport import TransportOptions, WsprotoTransport

__all__ = ["UwsgiTransport"]


def _uwsgi() -> Any:
    import uwsgi  # only importable inside a uWSGI process

    return uwsgi


class UwsgiTransport(WsprotoTransport):
    """A websocket upgraded by uWSGI and carried by wsproto, independent of uWSGI's request once accepted."""

    __slots__ = ("_origin",)

    def __init__(self, environ: dict[str, Any], key: str, options: TransportOptions) -> None:
        # No socket until accept(): the descriptor is uWSGI's request's, duplicated once the 101 is out.
        super().__init__(None, environ, key, options)
        self._origin = environ.get("HTTP_ORIGIN", "")

    def accept(self, subprotocol: str | None) -> None:
        uwsgi = _uwsgi()
        try:
            uwsgi.websocket_handshake(self._key, self._origin, subprotocol or "")
        except OSError as exc:
            raise ConnectionClosed(1006, f"handshake failed: {exc}") from exc
        self._origin = ""
        self.adopt(uwsgi.connection_fd(), subprotocol)
