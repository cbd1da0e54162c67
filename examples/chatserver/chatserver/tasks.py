"""The demo's long job: a Celery task that reports its progress to the user who started it.

Progress goes through the same ``RedisPublisher`` a view uses, addressed to one user, so only that user's
browsers (every tab they have open) see the bar move. The task needs nothing from ws4redis but a publisher.
"""

from __future__ import annotations

import json
import time
from typing import Any

from celery import shared_task
from django.conf import settings

from chatserver.metrics import JOBS_DONE_KEY, JOBS_RUNNING_KEY
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import get_connection

JOBS = "jobs"
STAGES = ("Collecting rows", "Aggregating", "Rendering charts", "Writing the PDF")


def _report(username: str, payload: dict[str, Any]) -> None:
    RedisPublisher(facility=JOBS, users=[username]).publish_message(json.dumps(payload), expire=0)


@shared_task(name="chatserver.build_report")  # type: ignore[untyped-decorator]  # celery ships no types
def build_report(username: str, job_id: str, title: str) -> None:
    """Pretend to build a report in ``CHATSERVER_JOB_STEPS`` steps, publishing progress after each one."""
    steps = int(getattr(settings, "CHATSERVER_JOB_STEPS", 20))
    pause = float(getattr(settings, "CHATSERVER_JOB_STEP_SECONDS", 0.3))
    conn = get_connection()
    conn.incr(JOBS_RUNNING_KEY)
    started = time.time()
    try:
        _report(username, {"job": job_id, "title": title, "state": "running", "percent": 0, "stage": "Queued"})
        for step in range(1, steps + 1):
            time.sleep(pause)  # the "work"
            stage = STAGES[min(len(STAGES) - 1, (step - 1) * len(STAGES) // steps)]
            percent = round(100 * step / steps)
            state = "done" if step == steps else "running"
            _report(username, {"job": job_id, "title": title, "state": state, "percent": percent, "stage": stage,
                               "elapsed": round(time.time() - started, 1)})
        conn.incr(JOBS_DONE_KEY)
    except Exception:
        _report(username, {"job": job_id, "title": title, "state": "failed", "percent": 0, "stage": "Failed"})
        raise
    finally:
        conn.decr(JOBS_RUNNING_KEY)


DIAGNOSIS = ("checking dashboards", "reading the logs", "rolling back the last deploy", "error rate back to normal")


@shared_task(name="chatserver.diagnose_incident")  # type: ignore[untyped-decorator]
def diagnose_incident(pk: int, username: str) -> None:
    """A slow automated diagnosis: each step saves the incident, and every save publishes its live HTML."""
    from chatserver.models import Incident

    pause = float(getattr(settings, "CHATSERVER_JOB_STEP_SECONDS", 0.3)) * 3
    for step, note in enumerate(DIAGNOSIS, start=1):
        incident = Incident.objects.get(pk=pk)
        incident.status = "mitigated" if step == len(DIAGNOSIS) else "investigating"
        incident.note = f"diagnosis for {username} ({step}/{len(DIAGNOSIS)}): {note}"
        incident.save()
        if step < len(DIAGNOSIS):
            time.sleep(pause)  # the "work"
