"""``manage.py ws4redis_sweep``: send the offline signals that are due, from outside the web workers (cron, a timer).

Every hub sweeps already; this is for deployments where every web worker can be gone at once (a scale to zero, a
full restart), so that people still go offline on time. Each transition is claimed atomically in Redis, so running it
alongside the hubs sends nothing twice. The receivers run here, in this process, one after another.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ws4redis.broker.presence_dispatch import send_now
from ws4redis.broker.presence_signals import sweep


class Command(BaseCommand):
    help = "Send the presence offline signals that are due (dead workers' sockets, graces that are over)."

    def handle(self, *args: Any, **options: Any) -> None:
        sent = sweep(send=send_now)
        self.stdout.write(f"ws4redis: {sent} offline signal(s) sent")
