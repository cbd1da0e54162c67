"""uWSGI entry points, under the original's module name.

``uWSGIWebsocketServer()`` is the websocket application on uWSGI's transport, as the original's deployment docs used
it; ``ws4redis.servers.wsgi.application`` dispatches between it and Django on one port.

Creating it prepares the process the way django-websocket-redis 0.6 users' uWSGI modules expect, so their
``wsgi_websocket.py`` and dispatching ``wsgi.py`` keep working unchanged:

- **Django is set up** (``django.setup()``) if nobody did yet: 0.6's websocket-only module only sets
  ``DJANGO_SETTINGS_MODULE`` before creating the server, and its server set Django up itself.
- **Blocking I/O is made cooperative** under uWSGI's gevent loop when the standard library is not monkey-patched
  (0.6's commands have no ``--gevent-early-monkey-patch``). Otherwise the hub's read of the Redis pub/sub socket is
  a plain ``recv()`` that blocks the whole worker: pages, websockets and signals alike. The process is patched
  (``ws4redis.servers.gevent_server.patch``, as uWSGI's own ``--gevent-monkey-patch`` would) and a warning names the
  flag that does
  it earlier, before the project is imported. 0.6's ``redis.connection.socket = gevent.socket`` line stays harmless:
  it gives redis-py the gevent socket module, which is what the patched ``socket`` module is.

Nothing of this happens at import: only when the application object is created, which uWSGI does when it loads the
project's module (in the master, or in each worker with ``lazy-apps``).
"""

from __future__ import annotations

import logging
from typing import Any

from ws4redis.integration.auth import Handshake
from ws4redis.runtime.gevent.wsproto_transport import options_from_settings
from ws4redis.servers.application import WebsocketApplication
from ws4redis.servers.uwsgi_transport import UwsgiTransport

__all__ = ["make_cooperative", "setup_django", "uWSGIWebsocketServer"]

logger = logging.getLogger("ws4redis.uwsgi_runserver")  # its name before the move: logging configurations keep it

#: The flag that patches before the project is imported, named in the warning.
EARLY_PATCH_FLAG = "--gevent-early-monkey-patch"


def _uwsgi_loop() -> str | None:
    """The loop engine of the uWSGI process we run in (``"gevent"``, ...), or ``None`` outside uWSGI."""
    try:
        import uwsgi  # only importable inside a uWSGI process
    except ImportError:
        return None
    loop = getattr(uwsgi, "loop", None)
    return loop.decode() if isinstance(loop, bytes) else loop


def make_cooperative() -> bool:
    """Monkey-patch the standard library for gevent when uWSGI runs its gevent loop unpatched; whether it patched.

    Under uWSGI's gevent loop every request is a greenlet of one thread: a blocking ``recv()`` on a socket of the
    standard library (redis-py's, the database driver's) stops them all, and the worker no longer answers anything,
    not even SIGTERM. ``--gevent-early-monkey-patch`` (or ``gevent-early-monkey-patch = true``) avoids this before
    the project is imported; without it, this is the last moment before ws4redis opens a socket.
    """
    if _uwsgi_loop() != "gevent":
        return False
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return False
    from ws4redis.servers.gevent_server import patch

    patch()
    logger.warning(
        "ws4redis: uWSGI runs the gevent loop but the standard library was not monkey-patched: patched it now, "
        "after the project was imported. Add %s (ini: gevent-early-monkey-patch = true) to patch before.",
        EARLY_PATCH_FLAG,
    )
    return True


def setup_django() -> None:
    """``django.setup()`` unless the apps are loaded already (the project's ``wsgi.py`` may have done it)."""
    from django.apps import apps

    if not apps.ready:
        import django

        django.setup(set_prefix=False)  # the WSGI handler sets the script prefix per request


def _uwsgi_transport(environ: dict[str, Any], handshake: Handshake) -> UwsgiTransport:
    return UwsgiTransport(environ, handshake.key, options_from_settings())


class uWSGIWebsocketServer(WebsocketApplication):  # noqa: N801 - the original's public name
    """The websocket WSGI application on uWSGI (``ws4redis.servers.uwsgi_transport``).

    Creating one sets Django up and makes the process cooperative where needed (see the module's docstring), so that
    a module doing only ``application = uWSGIWebsocketServer()`` is a complete websocket instance.
    """

    def __init__(self) -> None:
        make_cooperative()
        setup_django()
        super().__init__(_uwsgi_transport)
