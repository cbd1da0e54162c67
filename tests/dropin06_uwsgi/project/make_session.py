# ruff: noqa: E402 - written as a 0.6 project writes it
# Test helper (not part of 0.6's docs): create the tables and the user "john", print john's session cookie.
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "my_app.settings")
import django

django.setup()
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

call_command("migrate", verbosity=0)
user, _ = User.objects.get_or_create(username="john")
client = Client()
client.force_login(user)
sys.stdout.write(f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}\n")
