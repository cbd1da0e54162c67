"""Runtimes: what drives ws4redis' pure parts with real I/O.

``ws4redis.runtime.gevent`` (uWSGI, the gevent server, the threaded development server) and
``ws4redis.runtime.asyncio`` (ASGI servers) each have a hub and a per-socket driver. Both hubs keep the same channel
table (``ws4redis.runtime.subscriptions``) and read Redis through the same rules (``ws4redis.runtime.dispatch``).
Nothing is imported here: importing this package costs nothing.
"""
