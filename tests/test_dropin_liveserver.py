"""A project written for django-websocket-redis 0.6 (``tests/dropin06``) works unchanged on ws4redis, on Django's own
threaded server: its ``LiveServerTestCase`` suite passes, and ``manage.py runserver`` (Django's, as 0.6's
``INSTALLED_APPS`` order picks it) serves websockets through ``WSGI_APPLICATION``, a thread per websocket.

Both run in subprocesses, against the suite's redis-server, so the project's own settings are untouched by this
suite's.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import websocket  # websocket-client

from tests.servers import ROOT, Process, RedisServer, free_port, wait_for_port

PROJECT = ROOT / "tests" / "dropin06"


def _env(redis_server: RedisServer, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(PYTHONPATH=str(ROOT), WS4REDIS_TEST_REDIS_PORT=str(redis_server.port), **extra)
    return env


def test_the_06_live_server_suite_passes_unchanged(redis_server: RedisServer) -> None:
    """Every audience, kept messages, pipeline publishing, echo, heartbeat, a refused channel, closing."""
    run = subprocess.run(
        [sys.executable, "manage.py", "test", "chat06", "-v", "2"], cwd=PROJECT, env=_env(redis_server),
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Ran 13 tests" in run.stderr and "\nOK\n" in run.stderr, run.stderr


class Runserver(Process):
    """``manage.py runserver --noreload`` of the 0.6-style project: Django's threaded wsgiref server."""

    def __init__(self, redis_server: RedisServer, **extra: str) -> None:
        self.port = free_port()
        super().__init__(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            env=_env(redis_server, **extra), cwd=PROJECT,
        )
        wait_for_port(self.port, proc=self.proc)


@pytest.fixture
def runserver(redis_server: RedisServer) -> Iterator[Runserver]:
    server = Runserver(redis_server)
    yield server
    server.stop()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_plain_http_to_the_websocket_url_is_400_saying_upgrade(runserver: Runserver, method: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", runserver.port, timeout=10)
    conn.request(method, "/ws/foobar", body=b"x=1" if method == "POST" else None)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    assert response.status == 400, body
    assert "upgrade to a websocket" in body


def test_runserver_serves_websockets_from_one_hub_per_process(runserver: Runserver, redis_server: RedisServer) -> None:
    """Two websockets, each on its own thread, share the process's single pub/sub connection."""
    url = f"ws://127.0.0.1:{runserver.port}/ws/unittest?subscribe-broadcast"
    first = websocket.create_connection(url, timeout=10)
    second = websocket.create_connection(url, timeout=10)
    try:
        for ws in (first, second):  # a heartbeat's round trip: each opening is done
            ws.send("--heartbeat--")
            assert ws.recv() == "--heartbeat--"
        client = redis_server.client()
        assert client.publish("ws4redis:broadcast:unittest", "to both") == 1  # one subscriber: the hub
        assert first.recv() == "to both"
        assert second.recv() == "to both"
        hubs = [c for c in client.client_list() if c["name"].startswith("ws4redis-hub:")]
        assert len(hubs) == 1, hubs
        client.close()
    finally:
        first.close()
        second.close()
    assert "101" in runserver.output()  # Django's request log: the upgrade, then nothing written after it


def test_a_refused_channel_is_403_before_the_upgrade(runserver: Runserver) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"ws://127.0.0.1:{runserver.port}/ws/unittest?subscribe-broadcast", header=["Deny-Channels: YES"],
            timeout=10,
        )
    assert refused.value.status_code == 403
