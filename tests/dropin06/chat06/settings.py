"""Settings written as django-websocket-redis 0.6's docs and test project wrote them (modern Django names).

``django.contrib.staticfiles`` comes before ``ws4redis``, as in 0.6's settings, so ``manage.py runserver`` is Django's
own threaded server, and ``WSGI_APPLICATION`` hooks websockets into it. Only the Redis port comes from outside (the
test suite's redis-server).
"""

import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
SECRET_KEY = "dropin06-tests-only"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "chat06.urls"
STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "ws4redis",
    "chat06",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(BASE_DIR, "chat06", "templates")],
        "OPTIONS": {
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.template.context_processors.static",
                "django.template.context_processors.request",
                "ws4redis.context_processors.default",
            ],
        },
    }
]

# This setting is required to override the Django's main loop, when running in
# development mode, such as ./manage runserver
WSGI_APPLICATION = "ws4redis.django_runserver.application"

WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {
    "host": "127.0.0.1",
    "port": int(os.environ.get("WS4REDIS_TEST_REDIS_PORT", "6379")),
    "db": 0,
    "password": None,
}
WS4REDIS_EXPIRE = 10
WS4REDIS_PREFIX = "ws4redis"
WS4REDIS_HEARTBEAT = "--heartbeat--"

from chat06.denied_channels import denied_channels  # noqa: E402

WS4REDIS_ALLOWED_CHANNELS = denied_channels

# Set by tests/test_dropin_liveserver.py only: where the browser test put jQuery (fetched from npm), a STATIC_ROOT
# for collectstatic, and the documented switch letting anonymous pages publish (docs/migration.md).
if os.environ.get("DROPIN06_VENDOR_DIR"):
    STATICFILES_DIRS = [("vendor", os.environ["DROPIN06_VENDOR_DIR"])]
if os.environ.get("DROPIN06_STATIC_ROOT"):
    STATIC_ROOT = os.environ["DROPIN06_STATIC_ROOT"]
if os.environ.get("DROPIN06_PERMISSIVE"):
    WS4REDIS_POLICY = "permissive"
