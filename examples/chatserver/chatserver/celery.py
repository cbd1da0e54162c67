"""The demo's Celery app: Redis (the same server ws4redis uses) as broker, configured from Django settings.

When a worker is ready it starts a small heartbeat thread that feeds the dashboard's "Worker" tile, so the
dashboard shows the worker's own liveness independently of the metrics publisher.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatserver.settings")

app = Celery("chatserver")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _start_worker_beat(sender: Any = None, **kwargs: Any) -> None:
    from chatserver.metrics import WorkerBeat

    WorkerBeat.start()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_worker_beat(sender: Any = None, **kwargs: Any) -> None:
    from chatserver.metrics import WorkerBeat

    WorkerBeat.stop()
