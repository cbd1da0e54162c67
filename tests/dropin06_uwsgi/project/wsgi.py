# ruff: noqa: I001 - written as a 0.6 project writes it
# "Django with WebSockets for Redis as a stand alone uWSGI server", as django-websocket-redis 0.6's running docs show
# it; served with: uwsgi --http :80 --gevent 100 --http-websockets --module wsgi
import os
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'my_app.settings')
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from ws4redis.uwsgi_runserver import uWSGIWebsocketServer

_django_app = get_wsgi_application()
_websocket_app = uWSGIWebsocketServer()

def application(environ, start_response):
    if environ.get('PATH_INFO').startswith(settings.WEBSOCKET_URL):
        return _websocket_app(environ, start_response)
    return _django_app(environ, start_response)
