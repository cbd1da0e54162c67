"""Metrics across uWSGI's workers: every figure of ``ws4redis.views.metrics`` is the sum over both workers.

uWSGI runs two workers with ``PROMETHEUS_MULTIPROC_DIR`` in their environment (as uwsgi.ini's ``env`` would set
it); sockets are spread over both, so any figure that only counted the answering worker would be wrong.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import tempfile
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import People, _open_sockets, connect
from tests.redis_topologies import hub_pids, wait_until
from tests.servers import RedisServer, UwsgiServer
from ws4redis.management.commands.ws4redis_status import Figures
from ws4redis.publisher import RedisPublisher

CHANNEL = "test:broadcast:gauge"


@pytest.fixture(scope="module")
def metrics_dir() -> str:
    return tempfile.mkdtemp(prefix="ws4redis-metrics-")


@pytest.fixture(scope="module")
def server(redis_server: RedisServer, django_db_setup: Any, django_db_blocker: Any,
           metrics_dir: str) -> Iterator[UwsgiServer]:
    uwsgi = UwsgiServer(processes=2, env={"PROMETHEUS_MULTIPROC_DIR": metrics_dir})
    wait_until(lambda: len(uwsgi.workers()) == 2, what="two workers")
    yield uwsgi
    uwsgi.stop()


def scrape(server: UwsgiServer) -> Figures:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return Figures(text_string_to_metric_families(response.read().decode()))


def settled(server: UwsgiServer, check: Any, *, scrapes: int = 6) -> Figures:
    """Wait until ``check(figures)`` holds, then require it of several scrapes in a row (any worker may answer)."""
    wait_until(lambda: bool(check(scrape(server))), what="metrics")
    for _ in range(scrapes):
        figures = scrape(server)
        assert check(figures), figures.samples
    return figures


def spread(server: UwsgiServer, redis_server: RedisServer, path: str, channel: str) -> list[websocket.WebSocket]:
    """Sockets on both workers: PUBSUB NUMSUB 2 means both hubs subscribed ``channel``, i.e. both hold a socket."""
    client = redis_server.client()
    sockets: list[websocket.WebSocket] = []
    try:
        while client.pubsub_numsub(channel)[0][1] < 2:
            assert len(sockets) < 300, "sockets stayed on one worker"
            sockets.extend(connect(server, path) for _ in range(10))
    finally:
        client.close()
    return sockets


def test_figures_are_summed_over_both_workers(server: UwsgiServer, redis_server: RedisServer, people: People,
                                              metrics_dir: str) -> None:
    before = scrape(server)
    delivered_before = before.total("ws4redis_messages_delivered_total")
    sockets = spread(server, redis_server, "/ws/gauge?subscribe-broadcast", CHANNEL)
    count = len(sockets)
    settled(server, lambda f: f.total("ws4redis_connections") == count and f.total("ws4redis_subscriptions") == 2)

    publisher = RedisPublisher(facility="gauge", broadcast=True)
    for i in range(50):
        publisher.publish_message(f"m{i}")
    for ws in sockets:
        assert [ws.recv() for _ in range(50)] == [f"m{i}" for i in range(50)]
    figures = settled(
        server, lambda f: f.total("ws4redis_messages_delivered_total") - delivered_before == 50 * count
    )
    latency_count = figures.total("ws4redis_delivery_latency_seconds_count")
    # One observation per write batch (its oldest message), from both workers.
    assert 2 <= latency_count <= figures.total("ws4redis_messages_delivered_total")
    assert figures.quantile("ws4redis_delivery_latency_seconds", 0.5) is not None

    # Published through a Django view served by the workers: SELF user and session, two channels.
    client_cookie = people.cookie("alice")
    for _ in range(3):
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/publish/", headers={"Cookie": client_cookie})
        urllib.request.urlopen(request, timeout=5).read()
    settled(server, lambda f: f.total("ws4redis_messages_published_total", source="server") == 6)

    # A drop, by reason: an anonymous socket may not publish.
    sockets[0].send("not allowed")
    settled(server, lambda f: f.total("ws4redis_messages_dropped_total", reason="not_allowed_to_publish") == 1)

    out = io.StringIO()
    call_command("ws4redis_status", dir=metrics_dir, stdout=out)
    text = out.getvalue()
    assert f"connections          {count}" in text
    assert f"delivered            {int(figures.total('ws4redis_messages_delivered_total'))}" in text
    assert "not_allowed_to_publish 1" in text
    for pid in server.workers():
        assert str(pid) in text  # the Redis part names each worker's hub link
    by_url = io.StringIO()
    call_command("ws4redis_status", url=f"http://127.0.0.1:{server.port}/metrics", no_redis=True, stdout=by_url)
    assert f"connections          {count}" in by_url.getvalue()

    for ws in sockets:
        ws.close()
    settled(server, lambda f: f.total("ws4redis_connections") == 0 and f.total("ws4redis_subscriptions") == 0)


def test_hub_reconnects_and_recoveries_of_both_workers(server: UwsgiServer, redis_server: RedisServer) -> None:
    before = scrape(server)
    sockets = spread(server, redis_server, "/ws/relink?subscribe-broadcast", "test:broadcast:relink")
    client = redis_server.client()
    workers = set(server.workers())
    links = [c for c in client.client_list() if hub_pids_of([c]) & workers]
    assert len(links) == 2
    for link in links:
        client.client_kill_filter(_id=str(link["id"]))
    wait_until(lambda: client.pubsub_numsub("test:broadcast:relink")[0][1] == 2, what="both hubs resubscribed")
    client.close()
    reconnects = before.total("ws4redis_hub_reconnects_total") + 2
    recoveries = before.total("ws4redis_recoveries_total") + len(sockets)
    settled(server, lambda f: f.total("ws4redis_hub_reconnects_total") == reconnects
            and f.total("ws4redis_recoveries_total", outcome="not_recovered") == recoveries)


def test_a_killed_workers_connections_leave_the_sum(server: UwsgiServer, redis_server: RedisServer) -> None:
    """A SIGKILLed worker never decrements its gauge: the view forgets the gauge files of dead pids."""
    sockets = spread(server, redis_server, "/ws/killed?subscribe-broadcast", "test:broadcast:killed")
    settled(server, lambda f: f.total("ws4redis_connections") == len(sockets))
    client = redis_server.client()
    workers = set(server.workers())
    victim = next(pid for pid in hub_pids(client) if pid in workers)
    client.close()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in server.workers() and len(server.workers()) == 2, what="worker respawned")
    RedisPublisher(facility="killed", broadcast=True).publish_message("survivors")
    alive = 0
    for ws in sockets:
        try:
            alive += ws.recv() == "survivors"
        except (OSError, websocket.WebSocketException):
            pass
    assert 0 < alive < len(sockets)
    settled(server, lambda f: f.total("ws4redis_connections") == alive)
    for ws in sockets:
        ws.close()


def hub_pids_of(entries: list[dict[str, Any]]) -> set[int]:
    return {
        int(str(e["name"]).rsplit(":", 1)[1]) for e in entries if str(e.get("name") or "").startswith("ws4redis-hub:")
    }


# -- the fan-out latency counts every message, whichever way each socket is done with it (issue 15) ---------------
def _slow_socket(server: UwsgiServer, path: str) -> websocket.WebSocket:
    """A client that never reads, with a tiny receive buffer, so the server's queue for it fills up at once."""
    return websocket.create_connection(
        f"ws://127.0.0.1:{server.port}{path}", timeout=5,
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),),
    )


def _latency_count(server: UwsgiServer) -> float:
    return scrape(server).total("ws4redis_delivery_latency_seconds_count")


@pytest.mark.parametrize(
    ("policy", "reason"), [("drop-oldest", "slow_consumer_oldest"), ("close", "slow_consumer")]
)
def test_latency_counts_messages_a_slow_socket_dropped_or_never_got(
    uwsgi_factory: Any, policy: str, reason: str
) -> None:
    """A reader and a slow socket on one channel: each message is one observation, once both are done with it,
    whether the slow socket wrote it, dropped it (drop-oldest), or was closing (the close policy) or closed."""
    server = uwsgi_factory({"WS4REDIS_SLOW_CONSUMER": policy, "WS4REDIS_QUEUE_BYTES": 262144})
    facility = f"latency-{policy}"
    path = f"/ws/{facility}?subscribe-broadcast"
    before = scrape(server)
    reader = connect(server, path)
    slow = _slow_socket(server, path)
    _open_sockets.append(slow)
    count, payload = 300, "x" * 65536
    publisher = RedisPublisher(facility=facility, broadcast=True)
    for _ in range(count):
        publisher.publish_message(payload)
        assert reader.recv() == payload  # the reader keeps up; the slow socket's queue fills
    wait_until(
        lambda: scrape(server).total("ws4redis_messages_dropped_total", reason=reason)
        > before.total("ws4redis_messages_dropped_total", reason=reason),
        what=f"{reason} drops",
    )
    slow.shutdown()  # gone with whatever was still queued for it
    wait_until(lambda: _latency_count(server) - before.total("ws4redis_delivery_latency_seconds_count") >= count,
               what="one latency observation per message")
    assert _latency_count(server) - before.total("ws4redis_delivery_latency_seconds_count") == count


def test_latency_counts_a_message_whose_only_local_socket_suppressed_its_echo(
    uwsgi_factory: Any, people: People
) -> None:
    server = uwsgi_factory({"WS4REDIS_SLOW_CONSUMER": "close", "WS4REDIS_QUEUE_BYTES": 262144})
    before = _latency_count(server)
    alice = connect(server, "/ws/latency-echo?subscribe-broadcast&publish-broadcast", cookie=people.cookie("alice"))
    for i in range(5):
        alice.send(f"mine {i}")  # published, and not sent back to alice (echo off): nobody else listens
    wait_until(lambda: _latency_count(server) - before >= 5, what="one observation per suppressed echo")
    assert _latency_count(server) - before == 5
