"""Runtimes: what drives ws4redis' pure parts with real I/O.

``ws4redis.hub`` is the gevent hub (uWSGI, the gevent server, the threaded development server);
``ws4redis.runtime.asyncio_hub`` is the asyncio hub (ASGI servers). Both keep the same channel table
(``ws4redis.runtime.subscriptions``) and read Redis through the same rules (``ws4redis.runtime.dispatch``). Nothing is
imported here: importing this package costs nothing.
"""
