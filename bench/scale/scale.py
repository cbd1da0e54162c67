#!/usr/bin/env python
"""The scale bench (issue 22): S6, many idle authenticated websockets on one machine; S7, a fan-out to all of them.

Run by hand (never in CI), under the ws4redis venv (Django, redis-py), ideally through bench/scale/run.sh, which
holds the bench lock. One run:

  1. a private redis-server (``--redis-port``), a SQLite file of N users and N Django sessions (the cache engine on
     Redis, made in bulk with ``cache.set_many``: see scaleproj/settings.py for why this engine);
  2. P server processes of one worker each, every one on its own port (uWSGI ``--http-socket`` + gevent, or
     ``django-admin runwebsocket``): socket g goes to server g % P, so each holds exactly N / P (< 19,900: the
     descriptor limit of this machine is 20,000 per process, hard);
  3. M client processes (client.py, picows on uvloop), client k bound to 127.0.0.(k+2); a warm-up of a few
     sockets per server, then the baseline RSS of every server;
  4. the connect: all clients at once -> connect rate, and every process' CPU while connecting;
  5. the idle hold: every ``--sample`` seconds each server's RSS and CPU, the clients' open sockets and their
     disconnects (dropped sockets), Redis' pub/sub clients (CLIENT LIST);
  6. S7 (``--s7``): one broadcast, then ``--rate`` messages a second for ``--s7-seconds``: per message, sockets
     reached, and publish -> first and -> last socket;
  7. every process it started is stopped by pid (clients, servers, Redis), also on errors and on Ctrl-C.

Guards: loopback only; a hard deadline (``--max-seconds``); the run stops when the processes it started hold more
than ``--max-rss-gb`` (12 GiB by default; the machine has 24 GiB, shared).
Output: one JSON line per sample and a final summary line in ``--out`` (JSONL), a summary on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ---------------------------------------------------------------- /proc
def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            if int(s[s.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except OSError:
        return 0


def cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return 0.0
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


# ---------------------------------------------------------------- redis
def redis_pubsub_clients(port: int) -> int:
    import redis

    n = 0
    for c in redis.Redis(port=port).client_list():
        if any(int(c.get(k, 0) or 0) > 0 for k in ("sub", "psub", "ssub")):
            n += 1
    return n


# ---------------------------------------------------------------- the run
class Run:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.procs: list[subprocess.Popen] = []  # everything started, stopped by pid at the end
        self.out = open(a.out, "a")
        self.t_start = time.monotonic()
        self.deadline = self.t_start + a.max_seconds
        self.workdir = f"/tmp/ws4redis-scale-{os.getpid()}"
        os.makedirs(self.workdir, exist_ok=True)
        self.summary: dict = {"kind": "summary", "label": a.label, "server": a.server, "sockets": a.sockets, "servers": a.servers,
                              "clients": a.clients, "hold_s": a.hold, "git": self._git(), "code_root": a.code_root,
                              "started": time.time()}

    def _git(self) -> str:
        try:
            return subprocess.check_output(["git", "-C", self.a.code_root, "rev-parse", "--short", "HEAD"],
                                           text=True, stderr=subprocess.DEVNULL).strip()
        except Exception:
            return "?"

    def log(self, obj: dict) -> None:
        obj.setdefault("t", round(time.monotonic() - self.t_start, 2))
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def say(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t_start:7.1f}s] {msg}", flush=True)

    def start(self, argv: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, env=env, **kw)
        self.procs.append(p)
        return p

    # -- set-up ----------------------------------------------------------------------------------------------
    def env(self) -> dict:
        e = dict(os.environ)
        e.update(DJANGO_SETTINGS_MODULE="scaleproj.settings", BENCH_REDIS_PORT=str(self.a.redis_port),
                 SCALE_SESSIONS=self.a.sessions,
                 SCALE_DB=f"{self.workdir}/users.sqlite3", PYTHONPATH=f"{self.a.code_root}:{HERE}")
        if self.a.ping_interval:
            e["SCALE_PING_INTERVAL"] = str(self.a.ping_interval)
        return e

    def start_redis(self) -> None:
        a = self.a
        self.redis = self.start(["redis-server", "--port", str(a.redis_port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--maxclients", "10000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(a.redis_port, 10)

    def make_sessions(self) -> None:
        """N users and N sessions, in bulk, through Django's own APIs (in this process: Django is set up here)."""
        a = self.a
        os.environ.update({k: v for k, v in self.env().items() if k != "PYTHONPATH"})
        sys.path[:0] = [ROOT, HERE]
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.auth.hashers import make_password
        from django.contrib.auth.models import User
        from django.contrib.sessions.backends.cache import KEY_PREFIX
        from django.core.cache import caches
        from django.core.management import call_command
        from django.utils.crypto import get_random_string

        t0 = time.monotonic()
        call_command("migrate", verbosity=0, interactive=False)
        password = make_password("bench")
        User.objects.bulk_create(
            [User(username=f"u{i}", password=password) for i in range(a.sockets)], batch_size=5000)
        t1 = time.monotonic()
        user_hash = User(username="x", password=password).get_session_auth_hash()
        backend = settings.AUTHENTICATION_BACKENDS[0]
        keys = []
        if a.sessions == "signed":
            from django.contrib.sessions.backends.signed_cookies import SessionStore

            for i in range(a.sockets):
                store = SessionStore()
                store.update({SESSION_KEY: str(i + 1), BACKEND_SESSION_KEY: backend, HASH_SESSION_KEY: user_hash})
                store.save()
                keys.append(store.session_key)
        else:
            cache = caches[settings.SESSION_CACHE_ALIAS]
            batch: dict = {}
            for i in range(a.sockets):
                key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
                keys.append(key)
                batch[KEY_PREFIX + key] = {SESSION_KEY: str(i + 1), BACKEND_SESSION_KEY: backend,
                                           HASH_SESSION_KEY: user_hash}
                if len(batch) == 5000:
                    cache.set_many(batch, settings.SESSION_COOKIE_AGE)
                    batch = {}
            if batch:
                cache.set_many(batch, settings.SESSION_COOKIE_AGE)
        self.cookies = f"{self.workdir}/sessions.txt"
        with open(self.cookies, "w") as f:
            f.write("\n".join(keys) + "\n")
        first = User.objects.get(pk=1)
        assert first.username == "u0", first.username
        self.summary["setup"] = {"users_s": round(t1 - t0, 2), "sessions_s": round(time.monotonic() - t1, 2),
                                 "session_engine": settings.SESSION_ENGINE}
        self.say(f"{a.sockets} users in {t1 - t0:.1f}s, sessions in {time.monotonic() - t1:.1f}s")

    def start_servers(self) -> None:
        a = self.a
        py = a.python
        bindir = os.path.dirname(py)
        self.servers: list[subprocess.Popen] = []
        logdir = f"{self.workdir}/logs"
        os.makedirs(logdir, exist_ok=True)
        for k in range(a.servers):
            port = a.port + k
            if a.server == "uwsgi":
                argv = [f"{bindir}/uwsgi", "--http-socket", f"127.0.0.1:{port}", "--module",
                        "ws4redis.wsgi:application", "--need-app", "--gevent", str(a.gevent_cores),
                        "--gevent-early-monkey-patch", "--processes", "1", "--master", "--die-on-term",
                        "--disable-logging", "--max-fd", "20000", "--listen", "4096"]
            elif a.server == "bare":  # the floor: picows on uvloop, no auth, no policy (bare.py)
                argv = [a.client_python, os.path.join(HERE, "bare.py"), "--port", str(port), "--redis-port",
                        str(a.redis_port), "--deadline", str(a.max_seconds + 60)]
            else:
                argv = [py, "-m", "django", "runwebsocket", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                        "--backlog", "4096"]
            log = open(f"{logdir}/server-{k}.log", "w")
            self.servers.append(self.start(argv, env=self.env(), cwd=HERE, stdout=log, stderr=subprocess.STDOUT))
        for k in range(a.servers):
            wait_port(a.port + k, 60)
        # The processes that hold the sockets: uWSGI's worker (the master's child, forked once the master loaded
        # the app, after it bound the port); runwebsocket with one worker serves in its own process.
        self.workers = []
        end = time.monotonic() + 60
        for p in self.servers:
            if a.server != "uwsgi":
                self.workers.append(p.pid)
                continue
            while not (kids := children(p.pid)):
                if time.monotonic() > end or p.poll() is not None:
                    raise RuntimeError(f"uWSGI {p.pid} has no worker (logs in {logdir})")
                time.sleep(0.2)
            self.workers.append(kids[0])
        self.say(f"{a.servers} {a.server} servers on ports {a.port}..{a.port + a.servers - 1}, workers {self.workers}")

    def start_clients(self) -> None:
        a = self.a
        self.clients = []
        ports = ",".join(str(a.port + k) for k in range(a.servers))
        for k in range(a.clients):
            p = self.start([a.client_python, os.path.join(HERE, "client.py"), "--source", f"127.0.0.{k + 2}",
                            "--ports", ports, "--cookies", self.cookies, "--concurrency", str(a.concurrency),
                            "--deadline", str(a.max_seconds + 60)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            hello = json.loads(p.stdout.readline())
            assert hello.get("ready"), hello
            self.clients.append(p)

    def call(self, client: subprocess.Popen, obj: dict) -> None:
        client.stdin.write(json.dumps(obj) + "\n")
        client.stdin.flush()

    def answer(self, client: subprocess.Popen) -> dict:
        line = client.stdout.readline()
        if not line:
            raise RuntimeError(f"client {client.pid} exited")
        return json.loads(line)

    def all(self, obj: dict | list[dict]) -> list[dict]:
        objs = obj if isinstance(obj, list) else [obj] * len(self.clients)
        for c, o in zip(self.clients, objs):
            self.call(c, o)
        return [self.answer(c) for c in self.clients]

    # -- phases ----------------------------------------------------------------------------------------------
    def warmup(self) -> None:
        """A few sockets per server opened and closed: per-process lazy set-up (Django, the hub, the DB connection)
        is not counted as per-socket memory."""
        a = self.a
        c = self.clients[0]
        self.call(c, {"op": "connect", "first": 0, "count": a.servers * 8})
        r = self.answer(c)
        assert r["connected"] == a.servers * 8, r
        self.call(c, {"op": "close"})
        self.answer(c)
        time.sleep(1.0)

    def snapshot(self) -> dict:
        return {"rss": [rss_kb(w) for w in self.workers], "cpu": [cpu_s(w) for w in self.workers],
                "masters_rss": [rss_kb(p.pid) for p in self.servers] if self.a.server == "uwsgi" else None,
                "redis_rss": rss_kb(self.redis.pid), "redis_cpu": cpu_s(self.redis.pid),
                "clients_cpu": [cpu_s(c.pid) for c in self.clients], "clients_rss": [rss_kb(c.pid) for c in self.clients],
                "machine": machine_busy_s(), "mono": time.monotonic()}

    def ours_gb(self, snap: dict) -> float:
        kb = sum(snap["rss"]) + sum(snap["masters_rss"] or []) + snap["redis_rss"] + sum(snap["clients_rss"])
        return kb / 1024 / 1024

    def connect(self) -> None:
        a = self.a
        per = [a.sockets // a.clients + (1 if k < a.sockets % a.clients else 0) for k in range(a.clients)]
        firsts = [sum(per[:k]) for k in range(a.clients)]
        s0 = self.snapshot()
        self.base = s0
        self.say(f"baseline worker RSS {[r // 1024 for r in s0['rss']]} MB; connecting {a.sockets} sockets")
        answers = self.all([{"op": "connect", "first": f, "count": n} for f, n in zip(firsts, per)])
        s1 = self.snapshot()
        t0 = min(r["t0"] for r in answers)
        t1 = max(r["t1"] for r in answers)
        wall = t1 - t0
        connected = sum(r["connected"] for r in answers)
        errors: dict = {}
        for r in answers:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        d = s1["mono"] - s0["mono"]
        res = {
            "connected": connected, "connect_s": round(wall, 2), "connect_rate": round(connected / wall, 1),
            "connect_errors": errors,
            "connect_cpu_pct": {
                "clients_each": [round(100 * r["cpu_s"] / wall, 1) for r in answers],
                "servers_each": [round(100 * (b - c) / d, 1) for b, c in zip(s1["cpu"], s0["cpu"])],
                "servers": round(100 * (sum(s1["cpu"]) - sum(s0["cpu"])) / d, 1),
                "clients": round(100 * (sum(s1["clients_cpu"]) - sum(s0["clients_cpu"])) / d, 1),
                "redis": round(100 * (s1["redis_cpu"] - s0["redis_cpu"]) / d, 1),
                "machine": round(100 * (s1["machine"] - s0["machine"]) / d, 1),
            },
            "server_fds": [fds(w) for w in self.workers],
        }
        self.summary["connect"] = res
        self.log({"kind": "connect", **res})
        self.say(f"connected {connected}/{a.sockets} in {wall:.1f}s = {connected / wall:.0f}/s; "
                 f"errors {errors}; CPU% {res['connect_cpu_pct']}")

    def sample(self, phase: str, prev: dict) -> dict:
        s = self.snapshot()
        st = self.all({"op": "status"})
        d = s["mono"] - prev["mono"]
        n = self.a.sockets
        per_kb = (sum(s["rss"]) - sum(self.base["rss"])) / max(1, n)
        row = {
            "kind": "sample", "phase": phase,
            "rss_mb": [r // 1024 for r in s["rss"]], "rss_per_socket_kb": round(per_kb, 3),
            "server_cpu_pct": round(100 * (sum(s["cpu"]) - sum(prev["cpu"])) / d, 2),
            "server_cpu_pct_each": [round(100 * (b - c) / d, 2) for b, c in zip(s["cpu"], prev["cpu"])],
            "clients_cpu_pct": round(100 * (sum(s["clients_cpu"]) - sum(prev["clients_cpu"])) / d, 2),
            "redis_cpu_pct": round(100 * (s["redis_cpu"] - prev["redis_cpu"]) / d, 2),
            "machine_cpu_pct": round(100 * (s["machine"] - prev["machine"]) / d, 2),
            "open": sum(x["open"] for x in st), "disconnects": sum(x["disconnects"] for x in st),
            "ours_gb": round(self.ours_gb(s), 2),
        }
        row["server_cpu_pct_per_10k"] = round(row["server_cpu_pct"] / (n / 10000), 3)
        self.log(row)
        self.say(f"{phase}: {row['rss_per_socket_kb']:.2f} KB/socket, server CPU {row['server_cpu_pct']:.1f}% "
                 f"({row['server_cpu_pct_per_10k']:.2f}%/10k), clients {row['clients_cpu_pct']:.1f}%, machine "
                 f"{row['machine_cpu_pct']:.0f}%, open {row['open']}, dropped {row['disconnects']}, {row['ours_gb']} GB")
        if row["ours_gb"] > self.a.max_rss_gb:
            raise RuntimeError(f"the run holds {row['ours_gb']} GB > {self.a.max_rss_gb} GB: stopped")
        return s

    def hold(self) -> None:
        a = self.a
        try:
            self.summary["redis_pubsub_clients"] = redis_pubsub_clients(a.redis_port)
        except Exception as e:
            self.summary["redis_pubsub_clients"] = repr(e)
        self.say(f"Redis pub/sub clients: {self.summary['redis_pubsub_clients']} for {a.servers} workers")
        start = prev = self.snapshot()
        rows = []
        end = time.monotonic() + a.hold
        while time.monotonic() < end and time.monotonic() < self.deadline - 120:
            time.sleep(min(a.sample, max(0.1, end - time.monotonic())))
            cur = self.sample("hold", prev)
            rows.append(cur)
            prev = cur
        last = self.snapshot()
        d = last["mono"] - start["mono"]
        st = self.all({"op": "status"})
        n = a.sockets
        # Idle CPU: the whole hold except its first interval (ping rounds in flight start right away anyway)
        cpu_pct = 100 * (sum(last["cpu"]) - sum(start["cpu"])) / d
        self.summary["hold"] = {
            "seconds": round(d, 1),
            "rss_per_socket_kb_start": round((sum(start["rss"]) - sum(self.base["rss"])) / n, 3),
            "rss_per_socket_kb_end": round((sum(last["rss"]) - sum(self.base["rss"])) / n, 3),
            "server_cpu_pct": round(cpu_pct, 2), "server_cpu_pct_per_10k": round(cpu_pct / (n / 10000), 3),
            "clients_cpu_pct": round(100 * (sum(last["clients_cpu"]) - sum(start["clients_cpu"])) / d, 2),
            "machine_cpu_pct": round(100 * (last["machine"] - start["machine"]) / d, 2),
            "open": sum(x["open"] for x in st), "dropped": sum(x["disconnects"] for x in st),
            "server_fds": [fds(w) for w in self.workers],
        }
        self.say(f"hold: {self.summary['hold']}")

    def s7(self) -> None:
        import redis

        a = self.a
        r = redis.Redis(port=a.redis_port)
        channel = "broadcast:scale"
        self.all({"op": "reset"})
        n = a.sockets
        pub: dict[int, int] = {}
        pad = "x" * a.pad

        def publish(seq: int) -> int:
            t = time.monotonic_ns()
            receivers = r.publish(channel, f"scale|{seq}|{t}|{pad}")
            pub[seq] = t
            return receivers

        s0 = self.snapshot()
        receivers = publish(0)  # one broadcast to all, alone
        wait_until = time.monotonic() + 10
        while time.monotonic() < wait_until:
            time.sleep(0.2)
            got = sum(x["count"].get("0", 0) for x in self.all({"op": "stats"}))
            if got >= n:
                break
        count = int(a.rate * a.s7_seconds)
        t0 = time.monotonic()
        for seq in range(1, count + 1):
            target = t0 + (seq - 1) / a.rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            publish(seq)
        # Until every delivery arrived, or none arrived for --drain seconds (at most 120 s)
        expected = n * (count + 1)
        got, last_change, drain_end = -1, time.monotonic(), time.monotonic() + 120
        while time.monotonic() < drain_end:
            stats = self.all({"op": "stats"})
            total = sum(sum(x["count"].values()) for x in stats)
            if total >= expected:
                break
            if total != got:
                got, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > a.drain:
                break
            time.sleep(1)
        s1 = self.snapshot()
        stats = self.all({"op": "stats"})
        per_seq = []
        lost = 0
        for seq in range(0, count + 1):
            k = str(seq)
            reached = sum(x["count"].get(k, 0) for x in stats)
            lasts = [x["last"][k] for x in stats if k in x["last"]]
            firsts = [x["first"][k] for x in stats if k in x["first"]]
            lost += n - reached
            per_seq.append({"seq": seq, "reached": reached,
                            "first_ms": round((min(firsts) - pub[seq]) / 1e6, 2) if firsts else None,
                            "last_ms": round((max(lasts) - pub[seq]) / 1e6, 2) if lasts else None})
        lasts_ms = sorted(p["last_ms"] for p in per_seq[1:] if p["last_ms"] is not None)
        d = s1["mono"] - s0["mono"]
        res = {
            "messages": count + 1, "rate": a.rate, "pad": a.pad, "redis_receivers": receivers,
            "expected": n * (count + 1), "lost": lost, "dupes": sum(x["dupes"] for x in stats),
            "broadcast_last_ms": per_seq[0]["last_ms"], "broadcast_first_ms": per_seq[0]["first_ms"],
            "last_p50_ms": pct(lasts_ms, 50), "last_p99_ms": pct(lasts_ms, 99),
            "last_max_ms": lasts_ms[-1] if lasts_ms else None,
            "first_p50_ms": pct(sorted(p["first_ms"] for p in per_seq[1:] if p["first_ms"] is not None), 50),
            "server_cpu_pct": round(100 * (sum(s1["cpu"]) - sum(s0["cpu"])) / d, 1),
            "clients_cpu_pct": round(100 * (sum(s1["clients_cpu"]) - sum(s0["clients_cpu"])) / d, 1),
            "machine_cpu_pct": round(100 * (s1["machine"] - s0["machine"]) / d, 1),
            "dropped": sum(x["disconnects"] for x in stats),
        }
        self.log({"kind": "s7_messages", "per_seq": per_seq})
        self.summary["s7"] = res
        self.say(f"S7: {res}")

    def stop(self) -> None:
        """Clients first (they close their sockets), then the servers and Redis: each by its pid."""
        for c in getattr(self, "clients", []):
            try:
                self.call(c, {"op": "quit"})
            except Exception:
                pass
        for c in getattr(self, "clients", []):
            try:
                c.wait(30)
            except subprocess.TimeoutExpired:
                pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p is not getattr(self, "redis", None) else signal.SIGINT)
        for p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def pct(vals: list, q: float):
    if not vals:
        return None
    k = min(len(vals) - 1, max(0, int(round(q / 100.0 * len(vals) + 0.5)) - 1))
    return vals[k]


def wait_port(port: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=("uwsgi", "gevent", "bare"), default="uwsgi")
    ap.add_argument("--label", default="", help="a name for this run in the results")
    ap.add_argument("--sockets", type=int, default=20000)
    ap.add_argument("--sessions", choices=("signed", "cache"), default="signed",
                    help="Django session engine: signed cookies, or the cache engine on Redis (scaleproj/settings.py)")
    ap.add_argument("--servers", type=int, default=2, help="server processes of one worker each")
    ap.add_argument("--clients", type=int, default=2, help="client processes (each <= 19,900 sockets)")
    ap.add_argument("--hold", type=float, default=60, help="seconds of idleness after the connect")
    ap.add_argument("--sample", type=float, default=5)
    ap.add_argument("--s7", action="store_true", help="then one broadcast and --rate msgs/s for --s7-seconds")
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--s7-seconds", type=float, default=60)
    ap.add_argument("--pad", type=int, default=64, help="payload padding (bytes)")
    ap.add_argument("--drain", type=float, default=5, help="S7 ends when no delivery arrived for this long")
    ap.add_argument("--concurrency", type=int, default=256, help="handshakes in flight per client")
    ap.add_argument("--gevent-cores", type=int, default=1000, help="uWSGI --gevent (requests in flight)")
    ap.add_argument("--ping-interval", type=float, default=0, help="WS4REDIS_PING_INTERVAL (0: the default)")
    ap.add_argument("--port", type=int, default=8400)
    ap.add_argument("--redis-port", type=int, default=6395)
    ap.add_argument("--python", default=sys.executable, help="the ws4redis venv (default: this Python)")
    ap.add_argument("--code-root", default=ROOT,
                    help="the ws4redis the servers import (default: this checkout; e.g. an export of an older commit)")
    ap.add_argument("--client-python", default="/tmp/bench-venvs/loadgen/bin/python")
    ap.add_argument("--max-seconds", type=float, default=1200)
    ap.add_argument("--max-rss-gb", type=float, default=12)
    ap.add_argument("--out", default=os.path.join(BENCH, "results", time.strftime("scale-%Y%m%d-%H%M.jsonl")))
    a = ap.parse_args()
    per_server = -(-a.sockets // a.servers)
    per_client = -(-a.sockets // a.clients)
    if per_server > 19900 or per_client > 19900:
        sys.exit(f"{per_server} sockets per server / {per_client} per client: more than 19,900 (20,000 descriptors)")
    if a.clients > 250:
        sys.exit("at most 250 clients (127.0.0.2 .. 127.0.0.251)")
    run = Run(a)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        run.start_redis()
        run.make_sessions()
        run.start_servers()
        run.start_clients()
        run.warmup()
        run.connect()
        run.hold()
        if a.s7:
            run.s7()
    except BaseException as e:
        run.summary["error"] = repr(e)
        run.say(f"stopped: {e!r}")
    finally:
        run.stop()
        run.summary["seconds"] = round(time.monotonic() - run.t_start, 1)
        run.log(run.summary)
        print(json.dumps(run.summary, indent=1))


if __name__ == "__main__":
    main()
