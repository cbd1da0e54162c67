# ruff: noqa: E402 - written as a 0.6 project writes it
# Test helper: publish as a 0.6 project's code does (python publish.py FACILITY MESSAGE [USER]).
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "my_app.settings")
import django

django.setup()
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import RedisMessage

facility, message, *user = sys.argv[1:]
audience = {"users": user} if user else {"broadcast": True}
RedisPublisher(facility=facility, **audience).publish_message(RedisMessage(message))
