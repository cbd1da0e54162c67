"""``manage.py seed_demo``: the demo's users and group, idempotent (passwords are reset on every run)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser

from chatserver.accounts import DEFAULT_PASSWORD, DEMO_GROUP, DEMO_USERS, GROUP_MEMBERS


class Command(BaseCommand):
    help = "Create or reset the demo users (alice, bob, carol) and the demo group (ops)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default=DEFAULT_PASSWORD)

    def handle(self, *args: Any, password: str, **options: Any) -> None:
        group, _ = Group.objects.get_or_create(name=DEMO_GROUP)
        for username, full_name in DEMO_USERS.items():
            first, last = full_name.split(" ", 1)
            user, _ = User.objects.get_or_create(username=username)
            user.first_name, user.last_name = first, last
            user.set_password(password)
            user.save()
            if username in GROUP_MEMBERS:
                user.groups.add(group)
            else:
                user.groups.remove(group)
        self.stdout.write(f"demo users {', '.join(DEMO_USERS)} (password {password!r}); group {DEMO_GROUP!r}")
