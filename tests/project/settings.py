"""Django settings of the test project: SQLite in a temp file shared with the uWSGI servers the tests start.

The Redis port and the database path come from the environment (chosen once by the test process and inherited by
every server it starts); ``WS4REDIS_TEST_OVERRIDES`` (JSON) changes ws4redis settings for one server.
"""

import json
import os
import socket
import tempfile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REDIS_PORT = int(os.environ.setdefault("WS4REDIS_TEST_REDIS_PORT", str(_free_port())))
DB_PATH = os.environ.setdefault(
    "WS4REDIS_TEST_DB", os.path.join(tempfile.mkdtemp(prefix="ws4redis-test-"), "db.sqlite3")
)

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "ws4redis",
    "tests.modelapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tests.project.middleware.BlockHeaderMiddleware",
]
ROOT_URLCONF = "tests.project.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DB_PATH,
        "TEST": {"NAME": DB_PATH},
        "OPTIONS": {"timeout": 20},
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["ws4redis.context_processors.default"]},
    }
]

WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {"host": "127.0.0.1", "port": REDIS_PORT, "db": 0, "password": None}
WS4REDIS_EXPIRE = 0
WS4REDIS_PREFIX = "test"
WS4REDIS_HEARTBEAT = "--heartbeat--"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"ws4redis": {"handlers": ["console"], "level": "INFO"}},
}

globals().update(json.loads(os.environ.get("WS4REDIS_TEST_OVERRIDES", "{}")))
