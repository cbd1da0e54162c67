"""Project middleware of the tests: one that refuses requests by itself, to show the websocket goes through
MIDDLEWARE, and one that records every database connection the server opens."""

import os

from django.db.backends.signals import connection_created
from django.http import HttpResponseForbidden


class BlockHeaderMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.headers.get("X-Block-Me"):
            return HttpResponseForbidden("blocked by a project middleware")
        return self.get_response(request)


def _record_connection(sender, connection, **kwargs):
    """One line per new database connection: the process and the greenlet (or thread) that opened it."""
    import gevent

    line = f"{os.getpid()} {id(gevent.getcurrent())} {connection.alias}\n"
    with open(os.environ["WS4REDIS_TEST_DB_LOG"], "a") as log:
        log.write(line)


class DbConnectionLog:
    """Counts database connections (tests/test_handshake_pool.py): with ``WS4REDIS_TEST_DB_LOG`` set, each one the
    process opens from the first request on is a line of that file. Middleware is loaded before the first request
    touches the database, so none is missed."""

    def __init__(self, get_response):
        self.get_response = get_response
        if os.environ.get("WS4REDIS_TEST_DB_LOG"):
            connection_created.connect(_record_connection, dispatch_uid="tests.project.middleware.db_log")

    def __call__(self, request):
        return self.get_response(request)
