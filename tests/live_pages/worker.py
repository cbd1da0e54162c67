"""The Celery app of the live pages: the task publishes a fragment, as a task of any project would."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.live_pages.settings")

app = Celery("live_pages")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="live_pages.set_status")  # type: ignore[untyped-decorator]
def set_status(client: str, facility: str, text: str) -> None:
    """Replace the incident's status line on every page showing it (one render, one publish)."""
    from tests.live_pages.views import fragment

    markup = fragment(client, "update", target="status", template="live_pages/status.html", context={"text": text})
    from ws4redis import fragments

    fragments.publish(markup, facility=facility, broadcast=True)
