"""Real ASGI servers (uvicorn, daphne, hypercorn, granian) serving the test project's ``tests.project.asgi``.

Each runs in its own process on a free loopback port, with the same environment as the uWSGI servers of
``tests.servers`` (Redis port, database, ``WS4REDIS_TEST_OVERRIDES``); readiness is the port accepting connections,
and a server is stopped by its pid (SIGTERM, then SIGKILL after a timeout). Import ``asgi_servers_fixture`` into a test
module to use the session-wide ``asgi_servers`` factory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.servers import ROOT, Process, RedisServer, children_or_self, free_port, stop_all, wait_for_port

__all__ = ["ASGI_SERVERS", "AsgiServer", "asgi_servers_fixture", "command"]

ASGI_SERVERS = ("uvicorn", "daphne", "hypercorn", "granian")  # gunicorn (uvicorn workers) is started on request


def command(name: str, app: str, port: int) -> list[str]:
    """The command line that serves ``app`` (``module:attribute``) on ``127.0.0.1:port`` with server ``name``."""
    python = sys.executable
    if name == "uvicorn":
        return [python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on",
                "--no-access-log", "--timeout-graceful-shutdown", "5"]
    if name == "daphne":
        return [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    if name == "hypercorn":
        return [python, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", app]
    if name == "gunicorn":  # gunicorn with uvicorn's workers (the uvicorn-worker package), two processes
        return [python, "-m", "gunicorn", app, "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "2",
                "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5"]
    if name == "granian":
        return [python, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--log-level", "warning", app]
    raise ValueError(f"unknown ASGI server {name!r}")


class AsgiServer(Process):
    """One ASGI server process of the test project; ``port`` is where it listens."""

    def __init__(self, name: str, *, app: str = "tests.project.asgi:application",
                 overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 wait: bool = True, extra: list[str] | None = None, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()  # a given port: the same server started again where clients reconnect
        environ = dict(os.environ)
        environ.update({
            "DJANGO_SETTINGS_MODULE": "tests.project.settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "WS4REDIS_TEST_OVERRIDES": json.dumps(overrides or {}),
        })
        environ.update(env or {})
        module = {"gunicorn": "uvicorn_worker"}.get(name, name)
        if importlib.util.find_spec(module) is None:  # say what is missing, not "server exited before listening"
            raise RuntimeError(f"{module} is not installed: pip install -r requirements-test.txt")
        super().__init__(command(name, app, self.port) + list(extra or ()), env=environ, cwd=ROOT)
        if wait:
            wait_for_port(self.port, proc=self.proc)

    def workers(self) -> list[int]:
        """Pids of the processes that serve (gunicorn's workers; uvicorn and the others with one worker: itself)."""
        return children_or_self(self.pid)


_started: dict[str, AsgiServer] = {}


# Module scope: a server left running would take its turns at the deployment-wide presence sweep and claim other
# modules' offline signals in a process without their receivers (tests/test_presence_signals.py).
@pytest.fixture(scope="module", name="asgi_servers")
def asgi_servers_fixture(
    redis_server: RedisServer, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[Callable[..., AsgiServer]]:
    """``start(name, overrides=None, app=...)``: an ASGI server of the test project, started once per configuration
    for the module and stopped by pid at its end."""

    def start(name: str, overrides: dict[str, Any] | None = None, *,
              app: str = "tests.project.asgi:application") -> AsgiServer:
        key = json.dumps([name, app, overrides or {}], sort_keys=True)
        if key not in _started:
            _started[key] = AsgiServer(name, app=app, overrides=overrides)
        return _started[key]

    yield start
    stop_all(_started.values())
    _started.clear()
