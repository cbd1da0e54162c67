"""uWSGI entry points, under the original's module name.

``uWSGIWebsocketServer()`` is the websocket application on uWSGI's transport, as the original's deployment docs used
it; ``ws4redis.wsgi.application`` dispatches between it and Django on one port.
"""

from __future__ import annotations

from typing import Any

from ws4redis.application import WebsocketApplication
from ws4redis.auth import Handshake
from ws4redis.transports.uwsgi import UwsgiTransport
from ws4redis.transports.wsproto import options_from_settings

__all__ = ["uWSGIWebsocketServer"]


def _uwsgi_transport(environ: dict[str, Any], handshake: Handshake) -> UwsgiTransport:
    return UwsgiTransport(environ, handshake.key, options_from_settings())


class uWSGIWebsocketServer(WebsocketApplication):  # noqa: N801 - the original's public name
    """The websocket WSGI application on uWSGI (``ws4redis.transports.uwsgi``)."""

    def __init__(self) -> None:
        super().__init__(_uwsgi_transport)
