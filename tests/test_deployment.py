"""The deployment files as shipped, on real servers: ``uwsgi.ini``, ``nginx/ws4redis.conf`` and the emperor's vassals.

nginx (Debian's package) is started by the test on a loopback port with a config generated from ``nginx/``: only
addresses and paths are substituted, and each substitution must find its target, so the shipped file and the tested
one cannot drift apart. Everything runs on free ports and is stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import People
from tests.servers import ROOT, Process, RedisServer, free_port, wait_for_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
UWSGI = str(Path(sys.executable).with_name("uwsgi"))


def project_env(**extra: str) -> dict[str, str]:
    """The environment of a uWSGI started from a shipped file, pointed at the test project by its overrides."""
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.project.settings",
        "WS4REDIS_PROJECT_DIR": str(ROOT),
        "WS4REDIS_PYTHONPATH": str(ROOT),
        "WS4REDIS_PROCESSES": "1",
        "WS4REDIS_GEVENT": "100",
    })
    env.update(extra)
    return env


def substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the shipped file: update the test with it"
        text = text.replace(old, new)
    return text


def get(url: str, cookie: str | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode(), dict(response.headers)


def ws_connect(port: int, path: str, **kwargs: Any) -> Any:
    import websocket

    return websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=10, **kwargs)


class Nginx(Process):
    """nginx in the foreground with its own prefix, pid file, logs and temp paths under a temporary directory."""

    def __init__(self, site: Path, replacements: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        shutil.copy("/etc/nginx/uwsgi_params", workdir / "uwsgi_params")
        site_conf = substitute(site.read_text(), {"listen 80;": f"listen 127.0.0.1:{self.port};", **replacements})
        (workdir / "site.conf").write_text(site_conf)
        user = "user root;\n" if os.geteuid() == 0 else ""  # root's workers would otherwise drop to nobody
        temp = "\n".join(f"    {kind}_temp_path {workdir / kind};" for kind in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (workdir / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} info;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {workdir / 'access.log'};\n{temp}\n    include {workdir / 'site.conf'};\n}}\n"
        )
        self.workdir = workdir
        super().__init__([NGINX or "nginx", "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
                          "-e", str(workdir / "error.log")], log=workdir / "nginx.out")
        wait_for_port(self.port, proc=self.proc)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ws4redis-deploy-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def split(redis_server: RedisServer, people: People, workdir: Path) -> Iterator[dict[str, Any]]:
    """The two vassals, each started from its file, and nginx from ``nginx/ws4redis.conf`` in front of them."""
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    ws_port = free_port()
    sock = workdir / "django.sock"
    vassals = ROOT / "nginx" / "emperor" / "vassals"
    websocket_vassal = Process([UWSGI, "--ini", str(vassals / "websocket.ini")],
                               env=project_env(WS4REDIS_WS_BIND=f"127.0.0.1:{ws_port}"), log=workdir / "ws.log")
    django_vassal = Process([UWSGI, "--ini", str(vassals / "django.ini")],
                            env=project_env(WS4REDIS_DJANGO_SOCKET=str(sock)), log=workdir / "django.log")
    started: list[Process] = [websocket_vassal, django_vassal]
    try:
        wait_for_port(ws_port, proc=websocket_vassal.proc)
        _wait_for_unix_socket(sock, django_vassal)
        nginx = Nginx(ROOT / "nginx" / "ws4redis.conf", {
            "server unix:/run/ws4redis/django.sock;": f"server unix:{sock};",
            "server 127.0.0.1:8001;": f"server 127.0.0.1:{ws_port};",
            "alias /srv/ws4redis/static/;": f"alias {workdir}/static/;",
        }, workdir)
        started.append(nginx)
        yield {"nginx": nginx, "people": people, "websocket": websocket_vassal, "django": django_vassal}
    finally:
        for process in reversed(started):
            process.stop()


def _wait_for_unix_socket(path: Path, process: Process) -> None:
    import socket as socketlib
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"the Django vassal exited:\n{process.output()}")
        try:
            with socketlib.socket(socketlib.AF_UNIX) as s:
                s.connect(str(path))
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {path}:\n{process.output()}")


def test_nginx_split_layout(split: dict[str, Any], workdir: Path) -> None:
    from ws4redis.publisher import RedisPublisher

    nginx: Nginx = split["nginx"]
    people: People = split["people"]

    # An ordinary page: nginx -> uwsgi protocol -> the Django vassal (the websocket vassal has no uwsgi socket).
    status, body, _ = get(f"http://127.0.0.1:{nginx.port}/")
    assert (status, body) == (200, "django page")

    # Static files straight from nginx.
    (workdir / "static").mkdir()
    (workdir / "static" / "hello.txt").write_text("static from nginx")
    assert get(f"http://127.0.0.1:{nginx.port}/static/hello.txt")[1] == "static from nginx"

    # A websocket through nginx (Upgrade, HTTP/1.1) to the websocket vassal; a server-side publish reaches it.
    origin = f"http://127.0.0.1:{nginx.port}"
    ws = ws_connect(nginx.port, "/ws/deploy?subscribe-broadcast", origin=origin)
    try:
        RedisPublisher(facility="deploy", broadcast=True).publish_message("through nginx")
        assert ws.recv() == "through nginx"
    finally:
        ws.close()

    # A logged-in user's socket (the session cookie passes nginx), fed by an ordinary view served by the other
    # instance: the whole split path, browser -> nginx -> Django vassal -> Redis -> websocket vassal -> browser.
    cookie = people.cookie("alice")
    ws = ws_connect(nginx.port, "/ws/views?subscribe-user", cookie=cookie, origin=origin)
    try:
        assert get(f"http://127.0.0.1:{nginx.port}/publish/", cookie=cookie)[1] == "published"
        assert ws.recv() == "from a view"
    finally:
        ws.close()

    # A foreign Origin is still refused behind the proxy: nginx passes the Host header through unchanged.
    import websocket

    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        ws_connect(nginx.port, "/ws/deploy?subscribe-broadcast", origin="https://evil.example")
    assert refused.value.status_code == 403


def test_uwsgi_ini_serves_pages_and_websockets(redis_server: RedisServer, workdir: Path) -> None:
    from ws4redis.publisher import RedisPublisher

    port = free_port()
    (workdir / "static").mkdir()
    (workdir / "static" / "app.css").write_text("body{}")
    server = Process([UWSGI, "--ini", str(ROOT / "uwsgi.ini")], log=workdir / "uwsgi.log",
                     env=project_env(WS4REDIS_BIND=f"127.0.0.1:{port}", WS4REDIS_STATIC_ROOT=str(workdir / "static")))
    try:
        wait_for_port(port, proc=server.proc)
        assert get(f"http://127.0.0.1:{port}/")[1] == "django page"
        assert get(f"http://127.0.0.1:{port}/static/app.css")[1] == "body{}"  # uWSGI's static-map
        ws = ws_connect(port, "/ws/single?subscribe-broadcast")
        try:
            RedisPublisher(facility="single", broadcast=True).publish_message("one instance")
            assert ws.recv() == "one instance"
        finally:
            ws.close()
        assert "running gevent loop engine" in server.output()  # greenlets, not one socket per worker
    finally:
        server.stop()


def test_tls_variant_is_valid_nginx(workdir: Path) -> None:
    """``nginx -t`` accepts the TLS site with a throwaway certificate (serving TLS is nginx's job, not ours)."""
    if NGINX is None or shutil.which("openssl") is None:
        pytest.skip("nginx and openssl are needed")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    site = substitute((ROOT / "nginx" / "ws4redis-tls.conf").read_text(), {
        "listen 80;": f"listen 127.0.0.1:{free_port()};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{free_port()} ssl http2;",
        "/etc/letsencrypt/live/example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/example.com/privkey.pem": str(key),
        "server unix:/run/ws4redis/django.sock;": f"server unix:{workdir / 'django.sock'};",
    })
    (workdir / "site.conf").write_text(site)
    shutil.copy("/etc/nginx/uwsgi_params", workdir / "uwsgi_params")
    (workdir / "nginx.conf").write_text(
        f"pid {workdir / 'nginx.pid'};\nerror_log {workdir / 'error.log'};\nevents {{}}\n"
        f"http {{ access_log off; include {workdir / 'site.conf'}; }}\n"
    )
    done = subprocess.run([NGINX, "-t", "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
                           "-e", str(workdir / "error.log")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_emperor_runs_both_vassals(redis_server: RedisServer, workdir: Path) -> None:
    """``nginx/emperor/emperor.ini`` spawns both vassals with the emperor's environment, and stops them with it."""
    from ws4redis.publisher import RedisPublisher

    ws_port = free_port()
    sock = workdir / "django.sock"
    emperor = Process([UWSGI, "--ini", str(ROOT / "nginx" / "emperor" / "emperor.ini")], log=workdir / "emperor.log",
                      env=project_env(WS4REDIS_WS_BIND=f"127.0.0.1:{ws_port}", WS4REDIS_DJANGO_SOCKET=str(sock)))
    vassals: list[int] = []
    try:
        wait_for_port(ws_port, proc=emperor.proc)
        _wait_for_unix_socket(sock, emperor)
        ws = ws_connect(ws_port, "/ws/emperor?subscribe-broadcast")
        try:
            RedisPublisher(facility="emperor", broadcast=True).publish_message("vassal")
            assert ws.recv() == "vassal"
        finally:
            ws.close()
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(emperor.pid)], capture_output=True, text=True).stdout
        vassals = [int(pid) for pid in out.split()]
        assert len(vassals) == 2
    finally:
        emperor.stop()
    assert [pid for pid in vassals if _alive(pid)] == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"
