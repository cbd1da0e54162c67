"""ws4redis: real-time websockets for Django, served by uWSGI (with gevent), with Redis pub/sub as the broker.

Publish from any Django code with ``RedisPublisher(...).publish_message(RedisMessage(...))``; browsers connect to
``WEBSOCKET_URL + facility`` with the original django-websocket-redis flags. Importing this package has no side
effects.
"""

__version__ = "1.0.0.dev0"
__all__ = ["__version__"]
