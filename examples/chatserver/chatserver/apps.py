from __future__ import annotations

from django.apps import AppConfig


class ChatserverConfig(AppConfig):
    name = "chatserver"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from chatserver import incidents

        incidents.connect()
