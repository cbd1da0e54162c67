# ruff: noqa: E402, I001 - written as a 0.6 project writes it
# The websocket instance of "Django with WebSockets for Redis behind NGiNX using uWSGI" (0.6's running docs); served
# with: uwsgi --http-socket ... --gevent 1000 --http-websockets --workers=2 --master --module wsgi_websocket
import os
import gevent.socket
import redis.connection
redis.connection.socket = gevent.socket
os.environ.update(DJANGO_SETTINGS_MODULE='my_app.settings')
from ws4redis.uwsgi_runserver import uWSGIWebsocketServer
application = uWSGIWebsocketServer()
