"""The gevent servers as real subprocesses for the tests: ``runwebsocket`` and ``runserver`` on free loopback ports.

Both have the attributes of ``tests.servers.UwsgiServer`` (``port``, ``pid``, ``stop()``, ``output()``), so a
test parametrised over transports takes either. Each is stopped by its own pid only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.servers import ROOT, Process, children_or_self, free_port, wait_for_port

__all__ = ["GeventServer", "RunserverProcess", "project_env"]


def project_env(overrides: dict[str, Any] | None = None, settings: str = "tests.project.settings",
                env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server of the test project: settings module, overrides, and this repository first."""
    environ = dict(os.environ)
    environ.update({
        "DJANGO_SETTINGS_MODULE": settings,
        "PYTHONPATH": os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "WS4REDIS_TEST_OVERRIDES": json.dumps(overrides or {}),
        "PYTHONUNBUFFERED": "1",
    })
    environ.update(env or {})
    return environ


class GeventServer(Process):
    """``manage.py runwebsocket`` of the test project (Django too, with ``--with-django``, like ws4redis.wsgi)."""

    def __init__(self, *, overrides: dict[str, Any] | None = None, processes: int = 1, with_django: bool = True,
                 settings: str = "tests.project.settings", extra: list[str] | None = None,
                 env: dict[str, str] | None = None, **_ignored: Any) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "django", "runwebsocket", "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(processes), *(["--with-django"] if with_django else []), *(extra or [])]
        super().__init__(args, env=project_env(overrides, settings, env), cwd=ROOT)
        wait_for_port(self.port, proc=self.proc)

    def workers(self) -> list[int]:
        """Pids of the worker processes (children of the supervisor; the process itself with one worker)."""
        return children_or_self(self.pid)


class RunserverProcess(Process):
    """``manage.py runserver`` (ws4redis's, so with websockets) of ``project_dir``'s ``manage.py`` or the test project.

    ``reload=True`` keeps Django's autoreloader: ``pid`` is then the watching parent; ``stop()`` ends it and the
    serving child follows (Django's reloader child exits when its parent does, and we stop it by pid too).
    """

    def __init__(self, *, overrides: dict[str, Any] | None = None, reload: bool = False,
                 settings: str = "tests.project.settings", env: dict[str, str] | None = None,
                 cwd: Path | None = None, manage: list[str] | None = None) -> None:
        self.port = free_port()
        command = manage or [sys.executable, "-m", "django"]
        args = [*command, "runserver", f"127.0.0.1:{self.port}", *([] if reload else ["--noreload"])]
        super().__init__(args, env=project_env(overrides, settings, env), cwd=cwd or ROOT)
        wait_for_port(self.port, proc=self.proc, timeout=60)

    def children(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self, *args: Any, **kwargs: Any) -> None:
        children = self.children()
        super().stop(*args, **kwargs)
        for pid in children:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
