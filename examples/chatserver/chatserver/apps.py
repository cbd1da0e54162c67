"""The demo's app config: connects the incident board's publishing (``chatserver.incidents``) and the presence
receivers (``chatserver.presence``) once Django is ready."""

from __future__ import annotations

from django.apps import AppConfig


class ChatserverConfig(AppConfig):
    name = "chatserver"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from chatserver import incidents
        from chatserver.presence import connect_receivers

        incidents.connect()
        connect_receivers()
