"""Counters, gauges and a histogram (prometheus-client): what an operator watches, and the record of every drop.

Nothing is dropped silently: every refusal, closed slow consumer and discarded message is counted here and
logged by the caller.

Several uWSGI workers: prometheus-client's multiprocess mode. When ``PROMETHEUS_MULTIPROC_DIR`` is in the
environment *before the worker imports prometheus-client* (set it in uwsgi.ini with ``env = ...``, never in
Django settings), every process writes its values to memory-mapped files in that directory, and ``collect()``
(used by ``ws4redis.integration.views.metrics`` and ``manage.py ws4redis_status``) sums them over all processes,
whichever
worker serves the request. Gauges are ``livesum``: a dead worker's connections vanish from the sum (``collect``
forgets the gauge files of pids that no longer exist, so a SIGKILLed worker is covered too); counters of dead
workers stay in the sum, so totals never go backwards across worker restarts.

Without the variable each process counts for itself (fine for one worker, the development server, and tests).
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

__all__ = [
    "BAD_RECORDS",
    "CLOSED",
    "CONNECTIONS",
    "DELIVERED",
    "DELIVERY_LATENCY",
    "DROPPED",
    "HUB_RECONNECTS",
    "PUBLISHED",
    "PUBLISHED_BY_CLIENTS",
    "PUBLISHED_BY_SERVER",
    "RATE_LIMITED",
    "RECOVERIES",
    "REFUSED",
    "SUBSCRIPTIONS",
    "collect",
    "done",
    "multiprocess_dir",
]

CONNECTIONS = Gauge("ws4redis_connections", "Open websockets", multiprocess_mode="livesum")
SUBSCRIPTIONS = Gauge(
    "ws4redis_subscriptions", "Redis channels the hubs subscribe to, summed over processes", multiprocess_mode="livesum"
)
REFUSED = Counter("ws4redis_handshakes_refused", "Websocket requests refused before the upgrade", ["status"])
PUBLISHED = Counter(
    "ws4redis_messages_published",
    "Messages published to a Redis channel, one per channel; source: server (RedisPublisher) or client (a socket)",
    ["source"],
)
PUBLISHED_BY_SERVER = PUBLISHED.labels("server")
PUBLISHED_BY_CLIENTS = PUBLISHED.labels("client")
DELIVERED = Counter("ws4redis_messages_delivered", "Messages written to websockets")
DROPPED = Counter("ws4redis_messages_dropped", "Messages not delivered, by reason", ["reason"])
DELIVERY_LATENCY = Histogram(
    "ws4redis_delivery_latency_seconds",
    "From the hub receiving a message from Redis to its write on the last of this worker's websockets, per message",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RECOVERIES = Counter(
    "ws4redis_recoveries",
    "Websockets told they may have missed messages after a hub reconnect, by outcome (recovered, not_recovered)",
    ["outcome"],
)
CLOSED = Counter("ws4redis_connections_closed", "Websockets closed, by close code", ["code"])
RATE_LIMITED = Counter(
    "ws4redis_clients_rate_limited",
    "Websockets closed for sending faster than their allowance, by kind: publish (4029), control (1008: control "
    "frames and requests that are not publishes)",
    ["kind"],
)
HUB_RECONNECTS = Counter("ws4redis_hub_reconnects", "Times a hub re-established its Redis pub/sub connection")
BAD_RECORDS = Counter(
    "ws4redis_bad_records", "Messages from Redis a hub could not parse and skipped (ws4redis.core.wire)", ["reason"]
)



class _Fanned(Protocol):
    """What ``done`` needs of a message fanned out to several sockets (``ws4redis.runtime.gevent.hub.Delivery``)."""

    pending: int
    received: float


def done(delivery: _Fanned) -> None:
    """One socket is done with ``delivery``, whichever way: written, suppressed (its own echo, a legacy client
    and a presence event), dropped (drop-oldest, slow consumer, unsubscribed, closing). Called exactly once per
    socket the hub handed it to, so the last one records the fan-out latency, once per message: a message
    some socket skipped is still in ``DELIVERY_LATENCY``'s count (an observation per socket per message would
    cost a fifth of a burst's throughput)."""
    delivery.pending -= 1
    if delivery.pending == 0:
        DELIVERY_LATENCY.observe(time.monotonic() - delivery.received)


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    """The multiprocess directory when multiprocess mode is on in this process, else ``None``."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


def _forget_dead_processes(path: str) -> None:
    """Drop the live-gauge files of processes that are gone (a SIGKILLed worker never said goodbye)."""
    from prometheus_client import multiprocess

    dead: set[int] = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_GAUGE_FILE.search(os.path.basename(name))
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.add(pid)
        except PermissionError:
            pass  # alive, owned by another user
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def registry(path: str | None = None) -> CollectorRegistry:
    """The registry to expose: all processes' values from ``path`` (multiprocess mode), else this process's."""
    path = path or multiprocess_dir()
    if path is None:
        return REGISTRY
    from prometheus_client import multiprocess

    _forget_dead_processes(path)
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
    return merged


def collect(path: str | None = None) -> Iterable[Metric]:
    """Every metric family, summed over the processes of this host when multiprocess mode is on."""
    return registry(path).collect()
