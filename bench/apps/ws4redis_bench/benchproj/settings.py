"""Django settings of the benchmark project for ws4redis (this repository's package, not the 0.6 anchor).

Served by ``uwsgi --module ws4redis.wsgi:application`` (Django and websockets on one port); no database.
Same knobs as the anchor project (bench/apps/ws4redis_app/wsproj/settings.py), so the two are compared like for like.
"""
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "ws4redis",
]
MIDDLEWARE = []
ROOT_URLCONF = "benchproj.urls"
DATABASES = {}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {
    "host": "127.0.0.1",
    "port": int(os.environ.get("BENCH_REDIS_PORT", "6390")),
    "db": 0,
    "password": None,
}
WS4REDIS_EXPIRE = 0  # no message persistence, as for the anchor
WS4REDIS_HEARTBEAT = None
# Identity from ?uid=u17 (the documented hook for token auth): no database, no session.
WS4REDIS_PROCESS_REQUEST = "benchproj.auth.process_request"
# WS4REDIS_QUEUE_BYTES stays at its default (1 MiB): an S4 burst queues at most 5,000 x ~110 bytes per socket.

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# BENCH_PING_INTERVAL=1: every idle socket is pinged (and parses its client's pong) during S2's 5 s hold, so
# "server_rss_after_hold_kb" shows an idle socket's steady state, not only its state right after the upgrade.
if os.environ.get("BENCH_PING_INTERVAL"):
    WS4REDIS_PING_INTERVAL = float(os.environ["BENCH_PING_INTERVAL"])
    WS4REDIS_WAKE_INTERVAL = WS4REDIS_PING_INTERVAL / 2
