"""Django alone (no websockets), for the Django vassal of the split deployment: ``module = chatserver.wsgi``.

The single-instance layout uses ``ws4redis.wsgi:application`` instead, which serves both on one port.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatserver.settings")

application = get_wsgi_application()
