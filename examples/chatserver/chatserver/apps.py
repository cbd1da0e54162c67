"""The demo's app config: connects the presence receivers (``chatserver.presence``) once Django is ready."""

from __future__ import annotations

from django.apps import AppConfig


class ChatserverConfig(AppConfig):
    name = "chatserver"

    def ready(self) -> None:
        from chatserver.presence import connect_receivers

        connect_receivers()
