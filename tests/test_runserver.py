"""``manage.py runserver`` with ws4redis installed: Django, static files and websockets on one port, autoreloader on.

Each test starts the real command as a subprocess on a free loopback port and stops it by pid.
"""

from __future__ import annotations

import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import People, connect
from tests.gevent_servers import RunserverProcess
from tests.servers import RedisServer
from ws4redis.publisher import RedisPublisher

STATIC = {
    "DEBUG": True,
    "INSTALLED_APPS": [
        "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
        "ws4redis",  # before staticfiles: Django takes runserver from the first app that has one
        "django.contrib.staticfiles",
    ],
    "STATIC_URL": "/static/",
}


def get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read()


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


@pytest.fixture
def runserver(redis_server: RedisServer, transactional_db: Any) -> Any:
    started: list[RunserverProcess] = []

    def start(**kwargs: Any) -> RunserverProcess:
        server = RunserverProcess(**kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_pages_static_files_and_websockets_on_one_port(runserver: Any, people: People) -> None:
    server = runserver(overrides=STATIC, reload=True)
    assert get(server.port, "/") == (200, b"django page")
    status, body = get(server.port, "/static/ws4redis/ws4redis.js")
    assert status == 200 and b"WS4Redis" in body
    alice = connect(server, "/ws/dev?subscribe-user&subscribe-broadcast", cookie=people.cookie("alice"))
    bob = connect(server, "/ws/dev?subscribe-user", cookie=people.cookie("bob"))
    RedisPublisher(facility="dev", users=["alice"]).publish_message("for alice")
    RedisPublisher(facility="dev", users=["bob"]).publish_message("for bob")
    assert alice.recv() == "for alice"
    assert bob.recv() == "for bob"
    assert "Websockets at ws://127.0.0.1:" in server.output()
    assert server.children(), "the autoreloader runs the server in a child process"


def test_autoreloader_restarts_the_server_and_websockets_come_back(runserver: Any, people: People) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ws4redis-reload-"))
    settings_file = workdir / "reload_settings.py"
    settings_file.write_text("from tests.project.settings import *  # noqa: F403\n")
    env = {"PYTHONPATH": f"{workdir}:{Path(__file__).resolve().parent.parent}"}
    server = runserver(reload=True, settings="reload_settings", env=env)
    connect(server, "/ws/reload?subscribe-broadcast").close()
    wait_until(lambda: len(server.children()) == 1)
    (first,) = server.children()
    time.sleep(1.1)  # the stat reloader compares modification times at one-second resolution
    settings_file.write_text(settings_file.read_text() + "# changed\n")
    wait_until(lambda: server.children() not in ([], [first]))
    wait_until(lambda: _accepts(server))
    ws = connect(server, "/ws/reload?subscribe-broadcast")
    RedisPublisher(facility="reload", broadcast=True).publish_message("after reload")
    assert ws.recv() == "after reload"


def _accepts(server: RunserverProcess) -> bool:
    try:
        connect(server, "/ws/reload?subscribe-broadcast", timeout=1).close()
    except OSError:
        return False
    except Exception:  # a refused or half-started server: not yet
        return False
    return True


def test_original_wsgi_application_name_keeps_working(runserver: Any, people: People) -> None:
    """Projects of django-websocket-redis 0.6 point WSGI_APPLICATION at ws4redis.django_runserver.application."""
    server = runserver(overrides={"WSGI_APPLICATION": "ws4redis.django_runserver.application"})
    assert get(server.port, "/") == (200, b"django page")
    cookie = people.cookie("carol")
    ws = connect(server, "/ws/legacy?subscribe-session", cookie=cookie)
    RedisPublisher(facility="legacy", sessions=[People.session_key(cookie)]).publish_message("your session")
    assert ws.recv() == "your session"


def test_refusals_under_runserver(runserver: Any) -> None:
    from tests.conftest import refused_status

    server = runserver()
    assert refused_status(server, "/ws/x?subscribe-user") == 403
    assert refused_status(server, "/ws/bad:name?subscribe-broadcast") == 404
