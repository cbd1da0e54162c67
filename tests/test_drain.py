"""Reloading uWSGI without a reconnect storm: drain through Redis (1001 + jittered delays), then a graceful reload."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from django.core.management import call_command

from tests.conftest import connect
from tests.servers import RedisServer, UwsgiServer
from tests.test_revocation import assert_closed
from tests.test_websocket import wait_until
from ws4redis.exceptions import CloseCode
from ws4redis.publisher import RedisPublisher


def test_drain_then_graceful_reload(
    uwsgi_factory: Callable[..., UwsgiServer], redis_server: RedisServer, tmp_path: Path
) -> None:
    fifo = tmp_path / "master.fifo"
    server = uwsgi_factory(extra=["--master-fifo", str(fifo)])
    old_workers = server.workers()
    v2 = [connect(server, "/ws/drain?subscribe-broadcast", subprotocols=["ws4redis.v2"]) for _ in range(6)]
    for ws in v2:
        assert json.loads(ws.recv())["type"] == "welcome"
    legacy = connect(server, "/ws/drain?subscribe-broadcast")
    out = io.StringIO()
    call_command("ws4redis_drain", window=3, reload_fifo=str(fifo), stdout=out)
    assert "graceful reload requested" in out.getvalue()
    delays = []
    for ws in v2:
        told = json.loads(ws.recv())
        assert told["type"] == "shutdown"
        delays.append(told["reconnect_in"])
        assert_closed(ws, CloseCode.GOING_AWAY)
    assert all(500 <= delay <= 3000 for delay in delays), delays
    assert len(set(delays)) > 1, delays  # spread out: not everyone comes back at once
    assert_closed(legacy, CloseCode.GOING_AWAY)
    # The reload happened (new workers), and clients coming back are served.
    wait_until(lambda: bool(server.workers()) and set(server.workers()).isdisjoint(old_workers), timeout=30)
    again = connect(server, "/ws/drain?subscribe-broadcast")
    RedisPublisher(facility="drain", broadcast=True).publish_message("after the reload")
    assert again.recv() == "after the reload"


def test_drain_can_target_one_instance(uwsgi_factory: Callable[..., UwsgiServer], redis_server: RedisServer) -> None:
    server = uwsgi_factory({"WS4REDIS_INSTANCE": "ws-a"})
    ws = connect(server, "/ws/drain2?subscribe-broadcast")
    call_command("ws4redis_drain", window=1, instance="ws-b", stdout=io.StringIO())  # another instance
    RedisPublisher(facility="drain2", broadcast=True).publish_message("still here")
    assert ws.recv() == "still here"
    call_command("ws4redis_drain", window=1, instance="ws-a", stdout=io.StringIO())
    assert_closed(ws, CloseCode.GOING_AWAY)
