"""Settings of the chatserver demo: SQLite, sessions in the database, ws4redis and Celery on one Redis.

Everything a launcher must choose comes from the environment (``run_demo.py`` sets these; defaults suit
``manage.py`` in a checkout with a Redis on localhost):

- ``CHATSERVER_REDIS_URL``: the Redis for ws4redis; Celery uses database 1 of the same server as its broker.
- ``CHATSERVER_DB``: the SQLite file; ``CHATSERVER_STATIC_ROOT``: where ``collectstatic`` writes.
- ``CHATSERVER_JOB_STEP_SECONDS``: how long each of the demo job's 20 steps takes.
- ``CHATSERVER_SECRET_KEY``, ``CHATSERVER_ALLOWED_HOSTS`` (comma-separated), ``CHATSERVER_DEBUG``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def _redis_db(url: str, db: int) -> str:
    """The same Redis server as ``url`` on database ``db`` (Celery's queues stay apart from ws4redis' keys)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


REDIS_URL = os.environ.get("CHATSERVER_REDIS_URL", "redis://127.0.0.1:6379/0")

# A demo key: never deploy it. run_demo.py passes a random one per state directory.
SECRET_KEY = os.environ.get("CHATSERVER_SECRET_KEY", "chatserver-demo-key-do-not-deploy")
DEBUG = os.environ.get("CHATSERVER_DEBUG", "") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("CHATSERVER_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "ws4redis",  # before staticfiles: `manage.py runserver` is then ws4redis' (websockets), see ws4redis.W001
    "django.contrib.staticfiles",
    "chatserver",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "chatserver.urls"
WSGI_APPLICATION = "chatserver.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "ws4redis.context_processors.default",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CHATSERVER_DB", str(BASE_DIR / "db.sqlite3")),
        # Several uWSGI processes and the Celery worker share the file; wait for a lock rather than fail.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"
STATIC_URL = "/static/"
# htmx and its ws extension, installed from the npm registry by run_demo.py (no CDN): served as static files.
STATICFILES_DIRS = [("vendor", p) for p in [os.environ.get("CHATSERVER_VENDOR_DIR", "")] if p]
STATIC_ROOT = os.environ.get("CHATSERVER_STATIC_ROOT", str(BASE_DIR / "static-collected"))

# ws4redis. The incident board's fragments are kept (their publishers say for how long) and replayed to every page
# that connects or reconnects, so it shows the current state; chat lines, dashboard beats and job progress are
# published with expire=0: a chat line must not reappear on every page load, and liveness needs fresh beats only.
WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = REDIS_URL
WS4REDIS_PREFIX = "demo"
WS4REDIS_EXPIRE = 3600
WS4REDIS_SIGNED_STREAMS = ["incidents", "incident-*"]  # need the signature the template tag made; no client publishing
WS4REDIS_HEARTBEAT = "--heartbeat--"
# Presence on the chat: who is online (the sidebar), and an email to whoever is away when a direct message arrives
# (chatserver.presence). Away means no chat page open anywhere for WS4REDIS_PRESENCE_GRACE seconds.
WS4REDIS_PRESENCE = {"chat": {"ttl": 30}}
WS4REDIS_PRESENCE_GRACE = 5.0

# A demo sends no real email: the notice is printed in the server's log (uWSGI's output).
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = "chat@ws4redis.demo"

# Celery: the same Redis server, another database, as the demo promises one Redis for everything.
CELERY_BROKER_URL = os.environ.get("CHATSERVER_CELERY_BROKER", _redis_db(REDIS_URL, 1))
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

CHATSERVER_JOB_STEPS = 20
CHATSERVER_JOB_STEP_SECONDS = float(os.environ.get("CHATSERVER_JOB_STEP_SECONDS", "0.3"))
CHATSERVER_METRICS_INTERVAL = 1.0

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "short"}},
    "loggers": {
        "ws4redis": {"handlers": ["console"], "level": "INFO"},
        "chatserver": {"handlers": ["console"], "level": "INFO"},
    },
}
