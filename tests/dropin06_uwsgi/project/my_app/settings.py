# A project configured as django-websocket-redis 0.6's installation docs show (tests/test_dropin_uwsgi.py writes
# it into a temporary directory; the test replaces the port 6379 by its redis-server's).
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_KEY = "dropin06-test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = (
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "ws4redis",
)
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "my_app.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(BASE_DIR, "db.sqlite3")}}
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.contrib.auth.context_processors.auth",
        "ws4redis.context_processors.default",
    ]},
}]
STATIC_URL = "/static/"
USE_TZ = True

# django-websocket-redis 0.6's settings
WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {"port": 6379}
WS4REDIS_EXPIRE = 7200
WS4REDIS_PREFIX = "ws"
WS4REDIS_HEARTBEAT = "--heartbeat--"
WS4REDIS_ALLOWED_CHANNELS = "my_app.channels.get_allowed_channels"
WSGI_APPLICATION = "ws4redis.django_runserver.application"
