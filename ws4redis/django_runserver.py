"""The original's ``WSGI_APPLICATION = 'ws4redis.django_runserver.application'``, kept working.

``application`` serves Django and, under ``WEBSOCKET_URL``, websockets: on ws4redis's gevent servers
(``manage.py runserver``, ``runwebsocket --with-django``) through the wsproto transport, and under uWSGI through
uWSGI's own API. Unlike the original, nothing here patches Django or wsgiref, and no framing is written by hand.
"""

from __future__ import annotations

from ws4redis.server import GeventDispatcher

__all__ = ["application"]

application = GeventDispatcher()
