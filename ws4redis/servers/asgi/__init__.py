"""ws4redis under ASGI (uvicorn, gunicorn with uvicorn workers, daphne, hypercorn, granian).

- ``ws4redis.servers.asgi.application``: websockets only (``uvicorn ws4redis.servers.asgi:application``), for the
  websocket process of
  a split deployment; other paths answer 404.
- ``ws4redis.servers.asgi.get_asgi_application()``: Django and websockets in one application, for the project's
  ``asgi.py``.

The modules: ``handshake`` (scope to environ, then ``ws4redis.integration.auth``), ``refusal`` (statuses before the
upgrade),
``lifespan``, ``websocket`` (the websocket application; not ``application.py``, whose name the ``application`` object
would shadow), ``routing`` (Django or ws4redis), ``views`` (websocket views in a thread). The socket itself is run by
``ws4redis.runtime.asyncio.driver``. Nothing happens at import.
"""

from __future__ import annotations

from ws4redis.servers.asgi.routing import get_asgi_application
from ws4redis.servers.asgi.websocket import WebsocketApplication

__all__ = ["application", "get_asgi_application"]

application = WebsocketApplication()
