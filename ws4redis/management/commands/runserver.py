"""``manage.py runserver`` with websockets: Django, static files and websockets on one port, no uWSGI.

This is Django's own command (through ``django.contrib.staticfiles``'s, which adds static files and ``--insecure``)
with two of its documented seams filled in: ``server_cls`` is a gevent server
(``ws4redis.servers.gevent_server.RunserverServer``)
and ``get_handler`` puts the websocket dispatcher in front of Django's handler. The autoreloader, the checks and the
banner are Django's. The serving process is monkey-patched for gevent before the autoreloader starts its threads,
so that "thread" (a greenlet then) and the reloader's sleep share one gevent loop.

``ws4redis`` must come before ``django.contrib.staticfiles`` in ``INSTALLED_APPS``: Django takes a command from the
first app that has it. In the other order this module never runs, so the warning lives in a system check
(``ws4redis.integration.install_checks``, W001), which staticfiles' runserver prints at start.
"""

from __future__ import annotations

import os
from typing import Any

from django.apps import apps
from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserver
from django.core.management.commands.runserver import Command as CoreRunserver
from django.utils import autoreload

from ws4redis import settings
from ws4redis.servers.gevent_server import GeventDispatcher, RunserverServer, patch

__all__ = ["Command"]


class Command(StaticfilesRunserver):
    help = "Starts the development server with websockets (gevent + wsproto), autoreloader and static files."
    server_cls = RunserverServer  # type: ignore[assignment]  # a WSGIServer too, made for gevent

    def run(self, **options: Any) -> None:
        serving_here = not options["use_reloader"] or os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"
        if serving_here:
            patch()  # the watching parent process serves nothing and stays unpatched
        super().run(**options)

    def get_handler(self, *args: Any, **options: Any) -> Any:
        if apps.is_installed("django.contrib.staticfiles"):
            django_app = super().get_handler(*args, **options)
        else:
            django_app = CoreRunserver.get_handler(self, *args, **options)
        return GeventDispatcher(django_app)

    def on_bind(self, server_port: int) -> None:
        super().on_bind(server_port)
        addr, ipv6 = getattr(self, "addr", ""), getattr(self, "_raw_ipv6", False)  # set by Django's handle()
        host = f"[{addr}]" if ipv6 else ("0.0.0.0" if addr == "0" else addr)
        self.stdout.write(f"Websockets at ws://{host}:{server_port}{settings.get('WEBSOCKET_URL')}<facility> "
                          "(ws4redis: gevent + wsproto)")
