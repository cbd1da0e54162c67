"""The test project's settings plus what the live pages need: their URLs and templates, static files, signed
streams, kept messages (what a reconnecting page gets), and Celery on database 1 of the tests' Redis."""

import json
import os
from pathlib import Path

from tests.project.settings import *  # noqa: F403
from tests.project.settings import REDIS_PORT, TEMPLATES

HERE = Path(__file__).resolve().parent
ROOT_URLCONF = "tests.live_pages.urls"
STATIC_URL = "/static/"
TEMPLATES = [{
    **TEMPLATES[0],
    "DIRS": [HERE / "templates"],
    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "ws4redis.context_processors.default"]},
}]
WS4REDIS_SIGNED_STREAMS = ["incident-*"]
WS4REDIS_EXPIRE = 3600
LIVE_NPM_DIR = os.environ.get("WS4REDIS_LIVE_NPM_DIR", "")  # where the test set-up installed htmx and Turbo
# A Redis of its own for Celery (the tests flush theirs before each test), else database 1 of the tests' one.
CELERY_BROKER_URL = os.environ.get("WS4REDIS_LIVE_BROKER", f"redis://127.0.0.1:{REDIS_PORT}/1")
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

globals().update(json.loads(os.environ.get("WS4REDIS_TEST_OVERRIDES", "{}")))
