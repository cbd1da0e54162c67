#!/usr/bin/env python
"""The CPU one authenticated handshake costs in Python, without the network: Django's share and ws4redis' share.

Issue 22 asks for 5,000 authenticated handshakes a second on this 2-core machine. This measures, in one process and
one thread, with the scale bench's Django project (bench/scale/scaleproj: signed-cookie sessions, the session and
authentication middleware, users in SQLite):

* **Django alone**: a ``WSGIRequest``, the project's middleware, the user read by primary key, Django's
  ``request_started``/``request_finished`` (which close the database connection unless ``CONN_MAX_AGE`` keeps it);
* **ws4redis' ``handshake()``**: the same plus the upgrade checks, the Origin check, the flags, the channel policy
  and the subscriber's channels (``ws4redis.integration.auth.handshake``);

each with a new database connection per handshake (Django's default, ``CONN_MAX_AGE`` 0) and with one kept
(``--keep-connection``). The processes of a real run add uWSGI's request parsing, the 101, the hub's subscription,
the kernel's TCP and the clients (``bench/scale/scale.py``, ``--server bare`` for the floor of those).

    .venv/bin/python bench/scale/handshake_cost.py [--count 2000] [--keep-connection]

Starts a private redis-server on a free loopback port (ws4redis resolves its connection settings) and stops it by
pid; the SQLite file lives in a temporary directory that is removed at the end.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000, help="handshakes per measurement (users made up front)")
    ap.add_argument("--keep-connection", action="store_true", help="CONN_MAX_AGE None: one database connection")
    a = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="ws4redis-hscost-")
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        measure(a, workdir, port)
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def measure(a: argparse.Namespace, workdir: str, port: int) -> None:
    sys.path[:0] = [ROOT, HERE]
    os.environ.update(DJANGO_SETTINGS_MODULE="scaleproj.settings", SCALE_DB=f"{workdir}/users.sqlite3",
                      BENCH_REDIS_PORT=str(port))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    from django.core import signals
    from django.core.handlers.base import BaseHandler
    from django.core.handlers.wsgi import WSGIRequest
    from django.core.management import call_command
    from django.db import connections
    from django.http import HttpRequest, HttpResponse

    from ws4redis.integration.auth import handshake

    # Django's default (scaleproj keeps connections for the scale runs), or one connection kept for good.
    connections["default"].settings_dict["CONN_MAX_AGE"] = None if a.keep_connection else 0
    call_command("migrate", verbosity=0, interactive=False)
    password = make_password("bench")
    User.objects.bulk_create([User(username=f"u{i}", password=password) for i in range(a.count)], batch_size=5000)
    user_hash = User(username="x", password=password).get_session_auth_hash()
    keys = []
    for i in range(a.count):
        store = SessionStore()
        store.update({SESSION_KEY: str(i + 1), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
                      HASH_SESSION_KEY: user_hash})
        store.save()
        keys.append(store.session_key)

    def environ(i: int) -> dict[str, Any]:
        return {"REQUEST_METHOD": "GET", "PATH_INFO": "/ws/scale", "QUERY_STRING": "subscribe-broadcast",
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8400", "HTTP_HOST": "127.0.0.1:8400",
                "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade", "HTTP_SEC_WEBSOCKET_VERSION": "13",
                "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==", "HTTP_COOKIE": f"sessionid={keys[i]}",
                "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.2"}

    class Handler(BaseHandler):
        def _get_response(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse()

    handler = Handler()
    handler.load_middleware()

    def django_alone(i: int) -> None:
        signals.request_started.send(sender=None, environ=environ(i))
        request = WSGIRequest(environ(i))
        handler.get_response(request)
        assert request.user.is_authenticated  # type: ignore[attr-defined]
        signals.request_finished.send(sender=None)

    def ws4redis_handshake(i: int) -> None:
        assert handshake(environ(i)).request.user.is_authenticated  # type: ignore[union-attr]

    mode = "one kept connection (CONN_MAX_AGE None)" if a.keep_connection else "a new connection each (CONN_MAX_AGE 0)"
    print(f"{a.count} handshakes each, {mode}, Python {sys.version.split()[0]}, Django {django.__version__}")
    for name, step in (("Django alone (request, session, auth, user query)", django_alone),
                       ("ws4redis handshake() (the same + upgrade checks, Origin, flags, policy)", ws4redis_handshake)):
        for i in range(min(200, a.count)):
            step(i)  # warm-up: imports, the middleware chain, the query's compiled parts
        started = time.process_time()
        for i in range(a.count):
            step(i)
        print(f"  {name}: {1e6 * (time.process_time() - started) / a.count:.0f} us CPU per handshake")


if __name__ == "__main__":
    main()
