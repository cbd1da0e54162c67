"""Django settings of the scale bench (bench/scale/, S6 and S7): real Django sessions and users, no hook.

Sessions (``SCALE_SESSIONS``): ``signed`` (the default) is ``django.contrib.sessions.backends.signed_cookies``; ``cache``
is ``django.contrib.sessions.backends.cache`` on Django's own Redis cache (``RedisCache``, the bench's private
redis-server, db 1). Why signed cookies: under gevent, Django's cache handles and database connections belong to the
greenlet (asgiref's ``Local`` is greenlet-local once monkey-patched), so the cache engine opens a new Redis
connection for every handshake (profiled: 28% of a worker's connect CPU in redis-py's connect, a third of that
reading package metadata), which measures Django's cache, not ws4redis; a signed cookie costs one HMAC check. Either
way each handshake runs Django's session and authentication middleware for real: the session decoded, the user read
by primary key (``django.contrib.auth`` on a SQLite file made by the harness, ``SCALE_DB``, 100,000 rows sharing one
password hash; only read by the servers) and its session hash checked. The harness makes all sessions up front
through Django's own ``SessionStore`` (signed) or ``cache.set_many`` (cache).

Intervals stay at their defaults (``WS4REDIS_WAKE_INTERVAL`` 10 s, ``WS4REDIS_PING_INTERVAL`` 20 s) unless
``SCALE_PING_INTERVAL`` is set: the issue's idle CPU target is "with default intervals".
"""
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "ws4redis",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "scaleproj.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SCALE_DB", "/tmp/ws4redis-scale/users.sqlite3"),
        # As production sites set it: the handshake greenlets (WS4REDIS_HANDSHAKE_CONCURRENCY, 64 per worker) keep
        # their connection instead of opening one per handshake (bench/scale/handshake_cost.py: ~300 us apart).
        # SCALE_CONN_MAX_AGE=0 measures Django's default (a new connection per handshake).
        "CONN_MAX_AGE": int(os.environ.get("SCALE_CONN_MAX_AGE", "600")),
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# One cheap hasher: the harness hashes one password once; nobody logs in during the bench.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6395"))
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{REDIS_PORT}/1",
    }
}
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cache" if os.environ.get("SCALE_SESSIONS") == "cache"
    else "django.contrib.sessions.backends.signed_cookies"
)

WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {"host": "127.0.0.1", "port": REDIS_PORT, "db": 0, "password": None}
WS4REDIS_EXPIRE = 0  # no kept messages: S7 measures live fan-out
WS4REDIS_HEARTBEAT = None

if os.environ.get("SCALE_HANDSHAKE_CONCURRENCY"):  # 0: each handshake's Django part in its own request greenlet
    WS4REDIS_HANDSHAKE_CONCURRENCY = int(os.environ["SCALE_HANDSHAKE_CONCURRENCY"])

if os.environ.get("SCALE_PING_INTERVAL"):
    WS4REDIS_PING_INTERVAL = float(os.environ["SCALE_PING_INTERVAL"])
    WS4REDIS_WAKE_INTERVAL = WS4REDIS_PING_INTERVAL / 2

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
