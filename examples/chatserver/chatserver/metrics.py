"""What the live dashboard shows: tiles collected from their sources and published once per beat.

A tile is a small dict the browser renders as is (``headline``, ``unit``, ``details``, ``series``) plus ``ts``, the
time its source produced it. Each source is collected on its own, so a failing source (Redis INFO timing out, say)
leaves its tile without a fresh ``ts`` and the browser marks that tile stale while the others stay live: an operator
can tell a dead source from a dead link. Two processes feed the dashboard: the ``publish_metrics`` command (host,
Redis, chat) and the Celery worker's own beat thread (worker), so stopping one leaves the other's tiles live.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from django.conf import settings

from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import get_connection

__all__ = [
    "DASHBOARD",
    "JOBS_DONE_KEY",
    "JOBS_RUNNING_KEY",
    "MESSAGES_KEY",
    "MetricsCollector",
    "WorkerBeat",
    "publish_tiles",
]

logger = logging.getLogger(__name__)

DASHBOARD = "dashboard"
MESSAGES_KEY = "demo:stats:messages"
JOBS_DONE_KEY = "demo:stats:jobs-done"
JOBS_RUNNING_KEY = "demo:stats:jobs-running"

Tile = dict[str, Any]


def publish_tiles(source: str, tiles: dict[str, Tile], interval: float) -> None:
    """One beat of ``source``: every tile it collected, broadcast on the dashboard facility, never kept.

    ``interval`` travels with the beat so the browser knows when a beat is missed without sharing our settings.
    """
    message = {"kind": "metrics", "source": source, "interval": interval, "tiles": tiles}
    RedisPublisher(facility=DASHBOARD, broadcast=True).publish_message(json.dumps(message), expire=0)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in kB (Linux); empty elsewhere, which leaves the memory detail out."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            return {line.split(":")[0]: int(line.split()[1]) for line in fh if line.split()[1:2]}
    except (OSError, ValueError, IndexError):
        return {}


class MetricsCollector:
    """Collects the publisher's tiles; keeps the little history needed for rates (messages per minute)."""

    def __init__(self) -> None:
        self._messages: deque[tuple[float, int]] = deque(maxlen=61)

    def collect(self) -> dict[str, Tile]:
        """Every tile whose source answered; a source that raised is left out (so its tile turns stale)."""
        tiles: dict[str, Tile] = {}
        sources: dict[str, Callable[[], Tile]] = {"host": self.host, "redis": self.redis, "chat": self.chat}
        for name, collect in sources.items():
            try:
                tiles[name] = {"ts": time.time(), **collect()}
            except Exception:
                logger.warning("chatserver: the %s tile could not be collected", name, exc_info=True)
        return tiles

    def host(self) -> Tile:
        load1, load5, _load15 = os.getloadavg()
        mem = _meminfo()
        details = [["5 min load", f"{load5:.2f}"], ["CPUs", str(os.cpu_count() or 1)]]
        if mem.get("MemTotal"):
            used = 100.0 * (1 - mem.get("MemAvailable", 0) / mem["MemTotal"])
            details.append(["Memory used", f"{used:.0f} %"])
        return {"headline": f"{load1:.2f}", "unit": "load (1 min)", "details": details, "series": load1}

    def redis(self) -> Tile:
        conn = get_connection()
        info = conn.info()
        channels = len(conn.pubsub_channels("demo:*"))
        return {
            "headline": str(_int(info.get("instantaneous_ops_per_sec"))),
            "unit": "ops / s",
            "details": [
                ["Clients", str(_int(info.get("connected_clients")))],
                ["Pub/sub channels", str(channels)],
                ["Memory", str(info.get("used_memory_human", "?"))],
            ],
            "series": _int(info.get("instantaneous_ops_per_sec")),
        }

    def chat(self) -> Tile:
        now = time.time()
        total = _int(get_connection().get(MESSAGES_KEY))
        self._messages.append((now, total))
        # Messages over the last minute, from the oldest sample still inside the window.
        recent = [count for at, count in self._messages if now - at <= 60.0]
        per_minute = total - recent[0] if recent else 0
        return {
            "headline": str(per_minute),
            "unit": "messages / min",
            "details": [["Messages sent", str(total)]],
            "series": per_minute,
        }


class WorkerBeat:
    """A daemon thread in the Celery worker publishing the "worker" tile every beat.

    A thread, not a Celery beat task: it must keep beating while the worker is busy with a long job, which is exactly
    when an operator wants to see that the worker is alive.
    """

    _stop = threading.Event()
    _thread: threading.Thread | None = None

    @classmethod
    def start(cls) -> None:
        if cls._thread is not None and cls._thread.is_alive():
            return
        cls._stop.clear()
        cls._thread = threading.Thread(target=cls._run, name="chatserver-worker-beat", daemon=True)
        cls._thread.start()

    @classmethod
    def stop(cls) -> None:
        cls._stop.set()

    @classmethod
    def _run(cls) -> None:
        interval = float(getattr(settings, "CHATSERVER_METRICS_INTERVAL", 1.0))
        started = time.time()
        while not cls._stop.is_set():
            try:
                conn = get_connection()
                running, done = conn.mget(JOBS_RUNNING_KEY, JOBS_DONE_KEY)
                tile = {
                    "ts": time.time(),
                    "headline": str(max(_int(running), 0)),
                    "unit": "jobs running",
                    "details": [
                        ["Jobs finished", str(_int(done))],
                        ["Worker pid", str(os.getpid())],
                        ["Up", f"{int(time.time() - started)} s"],
                    ],
                    "series": max(_int(running), 0),
                }
                publish_tiles("worker", {"worker": tile}, interval)
            except Exception:
                logger.warning("chatserver: worker beat failed", exc_info=True)
            cls._stop.wait(interval)
