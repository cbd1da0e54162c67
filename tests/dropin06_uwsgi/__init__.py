"""A django-websocket-redis 0.6 project, set up as 0.6's docs show, run the documented ways (tests/test_dropin_*.py).

``project/`` holds the project's files exactly as a 0.6 user wrote them (settings, the combined ``wsgi.py``, the
websocket-only ``wsgi_websocket.py``, ``wsgi_django.py``); ``write_project`` copies them into a directory of the test
with the test's Redis port. ``Running`` is one server started with a 0.6 command line; ``check_end_to_end`` checks
what a 0.6 site relies on with a real websocket client: a broadcast, a user message on a logged-in session and the
refusal of an anonymous visitor by the project's ``WS4REDIS_ALLOWED_CHANNELS``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import websocket  # websocket-client

from tests.servers import Process, free_port, wait_for_port

TEMPLATE = Path(__file__).resolve().parent / "project"

#: The options of 0.6's two documented uWSGI commands, minus the virtualenv and the socket (the test's own).
STANDALONE = ["--gevent", "100", "--http-websockets", "--module", "wsgi"]  # + --http :80
DJANGO_INSTANCE = ["--buffer-size=32768", "--workers=5", "--master", "--module", "wsgi_django"]  # + --socket ...
WEBSOCKET_INSTANCE = ["--gevent", "1000", "--http-websockets", "--workers=2", "--master", "--module",
                      "wsgi_websocket"]  # + --http-socket /path/to/web.socket


def write_project(dest: Path, redis_port: int) -> Path:
    """The 0.6 project in ``dest`` (a fresh directory), talking to Redis on ``redis_port``."""
    shutil.copytree(TEMPLATE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    settings = dest / "my_app" / "settings.py"
    settings.write_text(settings.read_text().replace("{\"port\": 6379}", f"{{\"port\": {redis_port}}}"))
    return dest


def session_cookie(python: str, project: Path, env: dict[str, str] | None = None) -> str:
    """Create the tables and the user ``john`` with the project's own Python; john's ``sessionid=...`` cookie."""
    done = subprocess.run([python, "make_session.py"], cwd=project, capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Running(Process):
    """A server started in the project's directory; stopped with SIGINT (uWSGI's master reloads on SIGTERM)."""

    def __init__(self, args: list[str], project: Path, *, port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        super().__init__(args, cwd=project, env=env, log=project / f"server-{port}.log")
        wait_for_port(port, proc=self.proc, timeout=60)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """Stop it; fails the test when the server ignores the signal (a worker blocked outside gevent does, for
        ever; ``timeout`` only leaves room for a worker still importing the project on a busy machine)."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
            raise AssertionError(f"the server ignored signal {sig} for {timeout}s:\n{self.output()}") from None


def uwsgi(binary: str, project: Path, options: list[str], *, socket: str = "--http-socket",
          env: dict[str, str] | None = None) -> Running:
    """``uwsgi <socket> 127.0.0.1:<port> <options>`` in the project's directory, exactly one of 0.6's commands."""
    port = free_port()
    return Running([binary, socket, f"127.0.0.1:{port}", *options], project, port=port, env=env)


def get(port: int, path: str, timeout: float = 30.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")


def uwsgi_get(port: int, path: str, timeout: float = 30.0) -> tuple[int, str]:
    """GET ``path`` over the uwsgi protocol (what nginx's ``uwsgi_pass`` speaks to 0.6's Django instance)."""
    path_info, _, query = path.partition("?")
    variables = {"REQUEST_METHOD": "GET", "PATH_INFO": path_info, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
                 "SERVER_PORT": str(port), "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1"}
    body = b"".join(len(k).to_bytes(2, "little") + k.encode() + len(v).to_bytes(2, "little") + v.encode()
                    for k, v in variables.items())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"\0" + len(body).to_bytes(2, "little") + b"\0" + body)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, content = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), content.decode()


def connect(port: int, path: str, *, cookie: str | None = None) -> websocket.WebSocket:
    options: dict[str, Any] = {"timeout": 10}
    if cookie:
        options["cookie"] = cookie
    return websocket.create_connection(f"ws://127.0.0.1:{port}{path}", **options)


def refused_status(port: int, path: str) -> int:
    try:
        connect(port, path).close()
    except websocket.WebSocketBadStatusException as exc:
        return int(exc.status_code)
    raise AssertionError(f"{path} was accepted")


def receive(ws: websocket.WebSocket, heartbeat: str = "--heartbeat--") -> str:
    while True:
        message = ws.recv()
        if message != heartbeat:
            return str(message)


def check_end_to_end(port: int, cookie: str, publish: Any) -> None:
    """A broadcast, a user message and a refusal through the server on ``port``.

    ``publish(facility, message, user=None)`` publishes the 0.6 way (``RedisPublisher``), from a Django view of the
    same server or from the project's own Python.
    """
    anyone = connect(port, "/ws/foobar?subscribe-broadcast", cookie=cookie)
    john = connect(port, "/ws/foobar?subscribe-user", cookie=cookie)
    try:
        publish("foobar", "hello everybody")
        assert receive(anyone) == "hello everybody"
        publish("foobar", "hello john", user="john")
        assert receive(john) == "hello john"
        # A second websocket on the same worker after the first ones: the worker is still serving.
        again = connect(port, "/ws/foobar?subscribe-broadcast", cookie=cookie)
        assert receive(again) == "hello everybody"  # WS4REDIS_EXPIRE: the kept broadcast comes first
        again.close()
    finally:
        anyone.close()
        john.close()
    # The project's WS4REDIS_ALLOWED_CHANNELS refuses anonymous visitors, before the upgrade.
    assert refused_status(port, "/ws/foobar?subscribe-broadcast") == 403


def publish_with(python: str, project: Path, env: dict[str, str] | None = None) -> Any:
    """A ``publish`` for ``check_end_to_end`` running the project's ``publish.py`` with its own Python."""

    def publish(facility: str, message: str, user: str | None = None) -> None:
        args = [python, "publish.py", facility, message, *([user] if user else [])]
        done = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr

    return publish


def publish_by_view(port: int, *, protocol: str = "http") -> Any:
    """A ``publish`` for ``check_end_to_end`` through the project's Django view (over ``http`` or ``uwsgi``)."""
    from urllib.parse import urlencode

    request = uwsgi_get if protocol == "uwsgi" else get

    def publish(facility: str, message: str, user: str | None = None) -> None:
        query = {"facility": facility, "message": message, **({"user": user} if user else {})}
        assert request(port, "/publish?" + urlencode(query)) == (200, "published")

    return publish


def wait_for_log(server: Running, text: str, timeout: float = 30.0) -> str:
    """The server's log once it contains ``text`` (or fails when the server exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.output()
        if text in log:
            return log
        if server.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log:\n{server.output()}")
