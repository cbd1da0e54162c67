"""``manage.py ws4redis_status``: the metrics of ``ws4redis.integration.views.metrics`` at a glance, and who holds
Redis links.

The figures come from, in this order: ``--url`` (the metrics view of a running site, so any host), ``--dir``, or
``PROMETHEUS_MULTIPROC_DIR`` (the workers' multiprocess files on this host). Without any of them there is nothing
to read: this command's own process serves no websockets. The Redis part lists the hubs (one pub/sub link per
worker, named ``ws4redis-hub:<host>:<pid>``) that Redis sees, whatever the source of the figures.
"""

from __future__ import annotations

import math
import os
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ws4redis import metrics

__all__ = ["Command", "Figures"]


class Figures:
    """Samples of the ws4redis metric families, looked up by sample name and labels."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for family in families:
            for sample in family.samples:
                if sample.name.startswith("ws4redis_"):
                    self.samples[sample.name].append((dict(sample.labels), float(sample.value)))

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value for sample_labels, value in self.samples.get(name, [])
            if all(sample_labels.get(k) == v for k, v in labels.items())
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        found: dict[str, float] = defaultdict(float)
        for sample_labels, value in self.samples.get(name, []):
            found[sample_labels.get(label, "")] += value
        return dict(sorted(found.items()))

    def quantile(self, name: str, q: float) -> float | None:
        """The upper bound of the histogram bucket holding quantile ``q`` (``None`` without observations)."""
        buckets = sorted((float(le), value) for le, value in self.by_label(f"{name}_bucket", "le").items())
        count = self.total(f"{name}_count")
        if not buckets or count <= 0:
            return None
        for bound, cumulative in buckets:
            if cumulative >= q * count:
                return bound
        return math.inf


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "> largest bucket"
    return f"<= {value * 1000:g} ms"


def _labelled(values: dict[str, float]) -> str:
    shown = [f"{key} {int(value)}" for key, value in values.items() if value]
    return ", ".join(shown) if shown else "0"


def _hub_links() -> dict[str, list[dict[str, Any]]]:
    """``{redis address: [CLIENT LIST entries of ws4redis hubs]}`` for the Redis ws4redis publishes to."""
    from ws4redis.broker.redis_store import get_connection

    client: Any = get_connection()
    if hasattr(client, "get_primaries"):  # Redis Cluster: each shard's primary holds its own hub links
        found: dict[str, list[dict[str, Any]]] = {}
        for node in client.get_primaries():
            entries = client.client_list(target_nodes=node)
            found[node.name] = [e for e in entries if str(e.get("name") or "").startswith("ws4redis-hub:")]
        return found
    pool = client.connection_pool
    if hasattr(pool, "get_master_address"):  # Redis Sentinel: the master the sentinels name now
        host, port = pool.get_master_address()
        address = f"{host}:{port}"
    else:
        kwargs = pool.connection_kwargs
        address = f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}".rstrip(":")
    hubs = [entry for entry in client.client_list() if str(entry.get("name") or "").startswith("ws4redis-hub:")]
    return {address: hubs}


class Command(BaseCommand):
    help = "Print ws4redis connections, subscriptions, messages, drops, latency and hub links at a glance."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="URL of a running site's ws4redis.integration.views.metrics")
        parser.add_argument("--dir", help="the workers' PROMETHEUS_MULTIPROC_DIR (default: the environment's)")
        parser.add_argument("--no-redis", action="store_true", help="do not ask Redis which hubs are connected")

    def handle(self, *args: Any, **options: Any) -> None:
        figures, source = self._figures(options.get("url"), options.get("dir"))
        out = self.stdout.write
        out(f"ws4redis status ({source})")
        if figures is not None:
            out(f"  connections          {int(figures.total('ws4redis_connections'))}")
            out(f"  subscriptions        {int(figures.total('ws4redis_subscriptions'))}")
            out(f"  published            {_labelled(figures.by_label('ws4redis_messages_published_total', 'source'))}")
            out(f"  delivered            {int(figures.total('ws4redis_messages_delivered_total'))}")
            out(f"  dropped              {_labelled(figures.by_label('ws4redis_messages_dropped_total', 'reason'))}")
            out(f"  recoveries           {_labelled(figures.by_label('ws4redis_recoveries_total', 'outcome'))}")
            latency = "ws4redis_delivery_latency_seconds"
            count = int(figures.total(f"{latency}_count"))
            mean = figures.total(f"{latency}_sum") / count if count else None
            out(
                f"  delivery latency     p50 {_seconds(figures.quantile(latency, 0.5))}, "
                f"p99 {_seconds(figures.quantile(latency, 0.99))}, "
                f"mean {'-' if mean is None else f'{mean * 1000:.3f} ms'} ({count} writes)"
            )
            out(f"  hub reconnects       {int(figures.total('ws4redis_hub_reconnects_total'))}")
            out(f"  handshakes refused   {_labelled(figures.by_label('ws4redis_handshakes_refused_total', 'status'))}")
            out(f"  closed by code       {_labelled(figures.by_label('ws4redis_connections_closed_total', 'code'))}")
        if not options.get("no_redis"):
            self._redis(out)

    def _figures(self, url: str | None, path: str | None) -> tuple[Figures | None, str]:
        if url:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    text = response.read().decode()
            except OSError as exc:
                raise CommandError(f"cannot read {url}: {exc}") from exc
            return Figures(text_string_to_metric_families(text)), url
        path = path or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if path:
            if not os.path.isdir(path):
                raise CommandError(f"{path} is not a directory (PROMETHEUS_MULTIPROC_DIR of the workers)")
            return Figures(metrics.collect(path)), f"all processes writing to {path}"
        return None, "no figures: give --url of the metrics view, or --dir / PROMETHEUS_MULTIPROC_DIR of the workers"

    def _redis(self, out: Any) -> None:
        try:
            links = _hub_links()
        except Exception as exc:  # a status command reports an unreachable Redis instead of a traceback
            out(f"  redis                unreachable: {exc}")
            return
        for address, hubs in links.items():
            by_host: dict[str, list[str]] = defaultdict(list)
            channels = 0
            for entry in hubs:
                _, host, pid = str(entry["name"]).split(":", 2)
                by_host[host].append(pid)
                channels += int(entry.get("sub") or 0) + int(entry.get("ssub") or 0)
            hosts = "; ".join(f"{host}: {len(pids)} ({', '.join(sorted(pids))})" for host, pids in by_host.items())
            detail = f": {hosts}" if hosts else ""
            out(f"  redis {address:<14} {len(hubs)} hub link(s), {channels} subscriptions{detail}")
