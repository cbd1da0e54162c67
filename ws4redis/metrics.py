"""Counters and gauges (prometheus-client): what an operator watches, and the record of every drop.

Nothing is dropped silently: every refusal, closed slow consumer and discarded message is counted here and
logged by the caller. Exposition across uWSGI's several workers is the job of the metrics view.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "CLOSED",
    "CONNECTIONS",
    "DELIVERED",
    "DROPPED",
    "HUB_RECONNECTS",
    "PUBLISHED_BY_CLIENTS",
    "REFUSED",
    "SUBSCRIPTIONS",
]

CONNECTIONS = Gauge("ws4redis_connections", "Open websockets in this process")
SUBSCRIPTIONS = Gauge("ws4redis_subscriptions", "Redis channels this process's hub is subscribed to")
REFUSED = Counter("ws4redis_handshakes_refused", "Websocket requests refused before the upgrade", ["status"])
DELIVERED = Counter("ws4redis_messages_delivered", "Messages written to websockets")
PUBLISHED_BY_CLIENTS = Counter("ws4redis_client_messages_published", "Messages clients published through their socket")
DROPPED = Counter("ws4redis_messages_dropped", "Messages not delivered, by reason", ["reason"])
CLOSED = Counter("ws4redis_connections_closed", "Websockets closed, by close code", ["code"])
HUB_RECONNECTS = Counter("ws4redis_hub_reconnects", "Times a hub re-established its Redis pub/sub connection")


