"""The test project's plain Django ASGI application (no ws4redis): the Django process of the split ASGI layout."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
