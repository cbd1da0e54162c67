"""The test project's ASGI application: Django and ws4redis on one port (tests/asgi_servers.py serves it)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")

from ws4redis.asgi import get_asgi_application

application = get_asgi_application()
