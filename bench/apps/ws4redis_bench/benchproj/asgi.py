"""ASGI entry of the benchmark project: Django and ws4redis' websockets in one application, as a project's
``asgi.py`` would have it (``uvicorn benchproj.asgi:application``). Target ``ws4redis-asgi-uvicorn`` of bench/run.sh."""

import os

# The settings module is named before ws4redis.asgi is imported.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")

from ws4redis.asgi import get_asgi_application

application = get_asgi_application()
