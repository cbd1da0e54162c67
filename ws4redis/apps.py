"""The Django app: caches a user's group names in the session at login.

Connecting then never queries the database for groups: the websocket reads them from the session
(``ws4redis:memberof``), as the original did.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in

from ws4redis.broker.audience import MEMBEROF_KEY

__all__ = ["Ws4RedisConfig", "store_groups_in_session"]


def store_groups_in_session(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """``user_logged_in`` receiver: keep the user's group names in the session."""
    session = getattr(request, "session", None)
    groups = getattr(user, "groups", None)
    if session is not None and groups is not None:
        session[MEMBEROF_KEY] = list(groups.values_list("name", flat=True))


class Ws4RedisConfig(AppConfig):
    name = "ws4redis"
    verbose_name = "Websockets for Redis"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        user_logged_in.connect(store_groups_in_session, dispatch_uid="ws4redis.store_groups_in_session")
        from ws4redis.broker.revocation import connect_receivers
        from ws4redis.integration import install_checks  # noqa: F401  (registers its system checks)

        connect_receivers()
        from ws4redis.integration import checks

        checks.register()  # the settings' system checks (manage.py check, runserver)
