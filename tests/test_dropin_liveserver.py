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
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    assert "Ran 15 tests" in run.stderr and "\nOK\n" in run.stderr, run.stderr


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
    client = redis_server.client()
    # Other servers of the session share this redis-server: count the hub links this runserver adds.
    before = {c["id"] for c in client.client_list() if c["name"].startswith("ws4redis-hub:")}
    first = websocket.create_connection(url, timeout=10)
    second = websocket.create_connection(url, timeout=10)
    try:
        for ws in (first, second):  # a heartbeat's round trip: each opening is done
            ws.send("--heartbeat--")
            assert ws.recv() == "--heartbeat--"
        assert client.publish("ws4redis:broadcast:unittest", "to both") == 1  # one subscriber: the hub
        assert first.recv() == "to both"
        assert second.recv() == "to both"
        hubs = [c for c in client.client_list() if c["name"].startswith("ws4redis-hub:") and c["id"] not in before]
        assert len(hubs) <= 1, hubs  # one per process (none new if an earlier test of this server made it)
        client.close()
    finally:
        first.close()
        second.close()


def test_a_refused_channel_is_403_before_the_upgrade(runserver: Runserver) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"ws://127.0.0.1:{runserver.port}/ws/unittest?subscribe-broadcast", header=["Deny-Channels: YES"],
            timeout=10,
        )
    assert refused.value.status_code == 403


JQUERY = "3.7.1"  # MIT licence: fetched from the npm registry at test set-up, never committed
CHROMIUM = os.environ.get("WS4REDIS_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def jquery_dir() -> Path:
    """A directory holding ``jquery.min.js``, fetched once with npm into the user's cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ws4redis-tests" / f"jquery-{JQUERY}"
    target = cache / "jquery.min.js"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        packed = subprocess.run(
            ["npm", "pack", f"jquery@{JQUERY}", "--pack-destination", str(cache)], capture_output=True, text=True,
            timeout=120,
        )
        if packed.returncode != 0:
            pytest.skip(f"npm could not fetch jQuery: {packed.stderr.strip()[-200:]}")
        with tarfile.open(cache / f"jquery-{JQUERY}.tgz") as archive:
            member = archive.extractfile("package/dist/jquery.min.js")
            assert member is not None
            target.write_bytes(member.read())
    return cache


@pytest.fixture
def browser() -> Iterator[Any]:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}")
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield chromium
        chromium.close()


@pytest.mark.browser
def test_a_06_page_exchanges_messages_between_two_browsers(
    redis_server: RedisServer, jquery_dir: Path, browser: Any
) -> None:
    """The page of 0.6's usage docs, rendered by Django (``{{ STATIC_URL }}js/ws4redis.js``, jQuery, the original
    ``WS4Redis`` options and ``send_message``), in two browser contexts talking through runserver's threads.

    Anonymous pages publish here, so the server sets the documented ``WS4REDIS_POLICY = 'permissive'``.
    """
    server = Runserver(redis_server, DROPIN06_VENDOR_DIR=str(jquery_dir), DROPIN06_PERMISSIVE="1")
    try:
        tabs = []
        for _ in range(2):
            context = browser.new_context()
            context.set_default_timeout(15_000)
            tab = context.new_page()
            tab.goto(f"http://127.0.0.1:{server.port}/chat/")
            tab.wait_for_selector("body[data-connected=yes]")
            tabs.append(tab)
        for sender, receiver, text in ((tabs[0], tabs[1], "hello from the first"),
                                       (tabs[1], tabs[0], "hello from the second")):
            sender.fill("#text_message", text)
            sender.click("#send_message")
            receiver.wait_for_function("(t) => [...document.querySelectorAll('#billboard li')]"
                                       ".some(li => li.textContent === t)", arg=text)
        # Without ``echo`` a page never sees its own message.
        assert tabs[0].eval_on_selector_all("#billboard li", "els => els.map(e => e.textContent)") == [
            "hello from the second"
        ]
    finally:
        server.stop()
    assert "GET /static/js/ws4redis.js HTTP/1.1\" 200" in server.output()


def test_collectstatic_copies_the_client_to_the_06_path(redis_server: RedisServer, tmp_path: Path) -> None:
    """``js/ws4redis.js`` is a symlink in the package; collectstatic makes it a real file, the same client."""
    run = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=PROJECT, capture_output=True, text=True,
        env=_env(redis_server, DROPIN06_STATIC_ROOT=str(tmp_path)), timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    collected = tmp_path / "js" / "ws4redis.js"
    assert collected.is_file() and not collected.is_symlink()
    assert collected.read_bytes() == (ROOT / "ws4redis" / "static" / "ws4redis" / "ws4redis.js").read_bytes()
