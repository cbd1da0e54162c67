"""``ws4redis.asgi`` is now ``ws4redis.servers.asgi``; ``application`` and ``get_asgi_application`` keep this path
(``uvicorn ws4redis.asgi:application``), and each former submodule is an alias of its new module."""

from __future__ import annotations

from ws4redis.servers.asgi import application, get_asgi_application

__all__ = ["application", "get_asgi_application"]
