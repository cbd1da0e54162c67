"""``manage.py publish_metrics``: the dashboard's metrics source, one beat per interval until SIGTERM or Ctrl-C.

A separate process (not a thread in a web worker) so it can be stopped on its own, which is how the demo shows a
dead source: its tiles go stale while the connection and the worker tile stay live.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from chatserver.metrics import MetricsCollector, publish_tiles


class Command(BaseCommand):
    help = "Publish the dashboard's host, Redis and chat tiles every --interval seconds."

    def add_arguments(self, parser: CommandParser) -> None:
        default = float(getattr(settings, "CHATSERVER_METRICS_INTERVAL", 1.0))
        parser.add_argument("--interval", type=float, default=default)

    def handle(self, *args: Any, interval: float, **options: Any) -> None:
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        collector = MetricsCollector()
        self.stdout.write(f"publishing dashboard metrics every {interval:g} s")
        self.stdout.flush()
        next_beat = time.monotonic()
        while not stop.is_set():
            try:
                publish_tiles("publisher", collector.collect(), interval)
            except Exception as exc:
                self.stderr.write(f"publish failed: {exc}")
            # Beats on a fixed schedule, not "interval after the last publish", so slow collection does not drift.
            next_beat += interval
            stop.wait(max(0.0, next_beat - time.monotonic()))
