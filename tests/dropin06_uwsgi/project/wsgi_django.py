# ruff: noqa: I001 - written as a 0.6 project writes it
# The Django instance of the same layout (0.6's running docs).
import os
os.environ.update(DJANGO_SETTINGS_MODULE='my_app.settings')
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
