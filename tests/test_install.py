"""A 0.6 project on a fresh ``pip install`` of this checkout, started the documented ways (issue 21).

The rest of the suite runs in a venv with every extra and the test requirements, which hides a dependency missing
from ``install_requires`` (0.6 users saw ``No module named 'wsproto'`` under uWSGI). Here each venv holds only what
``pip install`` of the checkout's wheel brings:

- ``pip install 'ws4redis[uwsgi]'``: 0.6's websocket instance (``wsgi_websocket.py``, ``--module wsgi_websocket``)
  and 0.6's one-instance ``wsgi.py`` (``uwsgi --http ... --gevent 100 --http-websockets --module wsgi``);
- ``pip install ws4redis``: ``manage.py runwebsocket --with-django`` (the gevent server, no uWSGI).

Each serves a broadcast, a user message on a logged-in session and a refusal to a real websocket client. The wheel
is built once per session; the venvs live in the session's temporary directory and pip's cache makes them quick
(uWSGI is compiled by pip once, then comes from the cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dropin06_uwsgi import (
    STANDALONE,
    WEBSOCKET_INSTANCE,
    Running,
    check_end_to_end,
    get,
    publish_by_view,
    publish_with,
    session_cookie,
    uwsgi,
    write_project,
)
from tests.servers import ROOT, RedisServer, free_port

#: pip's own output is long; a failed install shows its tail.
_PIP_TAIL = 3000


def _run(args: list[str], **kwargs: object) -> str:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(args)}:\n{(done.stdout + done.stderr)[-_PIP_TAIL:]}"
    return str(done.stdout)


def _clean_env() -> dict[str, str]:
    """The environment without the suite's settings or python path: the venv must stand on its own."""
    return {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV")}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's wheel, built once from a copy of what the sdist holds (the checkout itself is not written to)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.py", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "ws4redis", source / "ws4redis", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheels")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)], env=_clean_env())
    (built,) = out.glob("ws4redis-*.whl")
    return built


def _venv(where: Path, requirement: str) -> Path:
    """A fresh venv holding only ``pip install <requirement>``; its ``bin`` directory."""
    _run([sys.executable, "-m", "venv", str(where)], env=_clean_env())
    bin_dir = where / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", requirement], env=_clean_env())
    return bin_dir


@pytest.fixture(scope="session")
def uwsgi_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("venv-uwsgi"), f"ws4redis[uwsgi] @ {wheel.as_uri()}")


@pytest.fixture(scope="session")
def plain_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("venv-plain"), f"ws4redis @ {wheel.as_uri()}")


@pytest.fixture
def project(redis_server: RedisServer, tmp_path: Path) -> Iterator[Path]:
    yield write_project(tmp_path / "mysite", redis_server.port)


def test_plain_install_holds_what_the_package_imports(plain_venv: Path) -> None:
    """Every module of the package imports from a plain install (uWSGI's and the test kit's need their extras)."""
    script = (
        "import django, importlib, pkgutil, ws4redis\n"
        "from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['django.contrib.auth', 'django.contrib.contenttypes',\n"
        "                                   'django.contrib.sessions', 'ws4redis'])\n"
        "django.setup()\n"
        "skip = {'ws4redis.testing'}\n"
        "for m in pkgutil.walk_packages(ws4redis.__path__, 'ws4redis.'):\n"
        "    if m.name not in skip and 'management.commands' not in m.name:\n"
        "        importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    assert _run([str(plain_venv / "python"), "-c", script], env=_clean_env(), cwd="/").strip() == "ok"
    assert not (plain_venv / "uwsgi").exists()


def test_uwsgi_extra_serves_the_websocket_instance(uwsgi_venv: Path, project: Path) -> None:
    """0.6's ``wsgi_websocket.py`` with ``uwsgi --http-socket ... --gevent 1000 --http-websockets --workers=2``."""
    python, env = str(uwsgi_venv / "python"), _clean_env()
    cookie = session_cookie(python, project, env)
    server = uwsgi(str(uwsgi_venv / "uwsgi"), project, WEBSOCKET_INSTANCE, env=env)
    try:
        check_end_to_end(server.port, cookie, publish_with(python, project, env))
    finally:
        server.stop()


def test_uwsgi_extra_serves_the_one_instance_wsgi_py(uwsgi_venv: Path, project: Path) -> None:
    """0.6's dispatching ``wsgi.py`` with ``uwsgi --http :PORT --gevent 100 --http-websockets --module wsgi``."""
    python, env = str(uwsgi_venv / "python"), _clean_env()
    cookie = session_cookie(python, project, env)
    server = uwsgi(str(uwsgi_venv / "uwsgi"), project, STANDALONE, socket="--http", env=env)
    try:
        assert get(server.port, "/") == (200, "a page")
        check_end_to_end(server.port, cookie, publish_by_view(server.port))
    finally:
        server.stop()


def test_plain_install_serves_with_runwebsocket(plain_venv: Path, project: Path) -> None:
    """Without uWSGI: ``manage.py runwebsocket --with-django`` serves the same project, pages and websockets."""
    python, env = str(plain_venv / "python"), _clean_env()
    cookie = session_cookie(python, project, env)
    port = free_port()
    args = [python, "manage.py", "runwebsocket", "--bind", f"127.0.0.1:{port}", "--with-django"]
    server = Running(args, project, port=port, env=env)
    try:
        assert get(port, "/") == (200, "a page")
        check_end_to_end(port, cookie, publish_by_view(port))
    finally:
        server.stop()
