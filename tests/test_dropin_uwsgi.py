"""django-websocket-redis 0.6's uWSGI layouts, unchanged, on ws4redis (issues 20 and 21).

A 0.6 project (``tests/dropin06_uwsgi``) is started with 0.6's own command lines, which have no
``--gevent-early-monkey-patch``, and must serve a broadcast, a user message and a refusal:

- the two-instance layout: ``wsgi_django.py`` on the uwsgi protocol publishes, and ``wsgi_websocket.py`` sets
  ``redis.connection.socket``, then ``DJANGO_SETTINGS_MODULE``, then ``application = uWSGIWebsocketServer()``;
  nobody calls ``django.setup()`` (was: every upgrade answered 500, ``AppRegistryNotReady``);
- one instance with 0.6's dispatching ``wsgi.py``, and with ``ws4redis.wsgi:application`` (was: the first websocket
  blocked the worker in ``recv()`` on the Redis socket, pages included, and the worker ignored signals);
- ``uwsgi --ini uwsgi.ini`` without ``WS4REDIS_PYTHONPATH`` stops at start with the import error (was: "ready",
  then a 500 for every request).

Here uWSGI and the packages are the test venv's; tests/test_install.py runs the same project from a fresh
``pip install``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dropin06_uwsgi import (
    DJANGO_INSTANCE,
    STANDALONE,
    WEBSOCKET_INSTANCE,
    check_end_to_end,
    get,
    publish_by_view,
    session_cookie,
    uwsgi,
    uwsgi_get,
)
from tests.servers import ROOT, Process, RedisServer, free_port

UWSGI = str(Path(sys.executable).with_name("uwsgi"))


@pytest.fixture(scope="module")
def project(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The 0.6 project in a temporary directory, and john's session cookie."""
    from tests.dropin06_uwsgi import write_project

    path = write_project(tmp_path_factory.mktemp("dropin06") / "mysite", redis_server.port)
    yield path, session_cookie(sys.executable, path, _env())


def _env() -> dict[str, str]:
    """This checkout's ws4redis first (the test venv may hold another one); no DJANGO_SETTINGS_MODULE of the suite."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_two_instance_layout(project: tuple[Path, str]) -> None:
    """0.6's two instances (nginx left out): Django's publishes reach the websocket instance's clients."""
    path, cookie = project
    django = uwsgi(UWSGI, path, DJANGO_INSTANCE, socket="--socket", env=_env())
    server = uwsgi(UWSGI, path, WEBSOCKET_INSTANCE, env=_env())
    try:
        assert uwsgi_get(django.port, "/") == (200, "a page")
        check_end_to_end(server.port, cookie, publish_by_view(django.port, protocol="uwsgi"))
    finally:
        server.stop()
        django.stop()
    assert "AppRegistryNotReady" not in server.output()


@pytest.mark.parametrize("module", ["wsgi", "ws4redis.wsgi:application"])
def test_one_instance_with_the_documented_command(project: tuple[Path, str], module: str) -> None:
    """``uwsgi --http :80 --gevent 100 --http-websockets --module wsgi``: pages and websockets on one port."""
    path, cookie = project
    options = [*STANDALONE[:-1], module]
    env = {**_env(), "DJANGO_SETTINGS_MODULE": "my_app.settings"}  # what 0.6's wsgi.py sets; ours needs it given
    server = uwsgi(UWSGI, path, options, socket="--http", env=env)
    try:
        assert get(server.port, "/") == (200, "a page")
        check_end_to_end(server.port, cookie, publish_by_view(server.port))
        assert get(server.port, "/") == (200, "a page")  # the worker still serves pages after websockets
        log = server.output()
    finally:
        server.stop()  # fails when the worker ignores SIGINT (blocked outside gevent)
    assert "--gevent-early-monkey-patch" in log  # the warning names the flag that patches earlier


def test_uwsgi_ini_without_the_project_path_refuses_to_start(project: tuple[Path, str]) -> None:
    """``uwsgi --ini uwsgi.ini`` with the project's settings but not its path: the import error, and no instance."""
    path, _ = project
    port = free_port()
    env = {**_env(), "DJANGO_SETTINGS_MODULE": "my_app.settings", "WS4REDIS_BIND": f"127.0.0.1:{port}"}
    server = Process([UWSGI, "--ini", str(ROOT / "uwsgi.ini")], env=env, cwd=path.parent)
    try:
        server.proc.wait(60)
    finally:
        server.stop()
    log = server.output()
    assert server.proc.returncode != 0, log
    assert "No module named 'my_app'" in log, log
    # And with the path given, the same command serves the project.
    env["WS4REDIS_PYTHONPATH"] = str(path)
    from tests.dropin06_uwsgi import Running

    running = Running([UWSGI, "--ini", str(ROOT / "uwsgi.ini")], path, port=port, env=env)
    try:
        assert get(port, "/") == (200, "a page")
    finally:
        running.stop()
