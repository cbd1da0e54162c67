"""Servers: the entry points a deployment names (WSGI and uWSGI modules, the gevent server, Django's threaded
runserver, ASGI) and what is specific to one server (uWSGI's upgrade, websocket views on each runtime).
"""
