#!/usr/bin/env python
"""WebSocket fan-out load generator (loopback only, bounded in count and time).

One run:
  1. starts the publisher (bench/publisher.py, in the anchor's venv) and waits
     until it is ready (Django setup is kept out of the timings);
  2. reads the server's RSS (VmRSS summed over --server-pid and its descendants)
     and Redis' RSS;
  3. opens --conns websocket connections (at most --connect-concurrency
     handshakes in flight) -> connect rate, errors;
  4. makes sure every connection is subscribed: sends probe messages through the
     real publish path until every connection has received one;
  5. reads RSS again -> RSS per connection; optionally holds (--hold) and
     re-reads;
  6. asks the publisher for --messages messages at --rate msg/s (0 = as fast as
     possible), broadcast to all connections, or with --targeted message i goes
     to connection i % N only; every message carries its send timestamp;
  7. waits until all deliveries arrived, or no progress for --drain-idle s, or
     the --max-seconds deadline; then closes everything and exits.

It prints one JSON object (also appended to --out) with connect rate,
deliveries/s, latency percentiles, losses, RSS and the CPU used by the server,
Redis, the publisher and the load generator itself during the publish phase
(percent of one core), so a saturated load generator is visible.

Clients: --client picows (Cython, default: cheapest per message),
--client websockets (pure-asyncio `websockets` library), or --client raw (a minimal
RFC 6455 client on an asyncio Protocol in this file: no dependency at all, used by the
CI regression guard, tests/test_bench_guard.py).

Copied from the shared harness (../shared/bench/loadgen.py); additions: the raw client,
--redis-port (counts the Redis clients holding pub/sub subscriptions once every socket is
subscribed: "redis_pubsub_clients"), and "server_workers" (children of --server-pid).
"""
import argparse
import asyncio
import json
import os
import resource
import shlex
import sys
import time
import uuid
from array import array
from urllib.parse import urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_CONNS = 20000
MAX_MESSAGES = 200000


# ---------------------------------------------------------------- /proc helpers
def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def proc_tree(roots):
    kids = _children_map()
    out, stack = [], list(roots)
    while stack:
        p = stack.pop()
        if p in out:
            continue
        out.append(p)
        stack.extend(kids.get(p, []))
    return out


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_s(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLK_TCK


def machine_busy_s():
    """CPU seconds used by the whole machine (all cores, every process), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # minus idle and iowait


def self_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def check_loopback(url):
    host = urlsplit(url).hostname or ""
    if not (host in ("localhost", "::1") or host.startswith("127.")):
        sys.exit(f"refusing non-loopback target {host!r}")


# ---------------------------------------------------------------- bookkeeping
class Book:
    def __init__(self, n, m, targeted, run_id, uids):
        self.n, self.m, self.targeted, self.run_id = n, m, targeted, run_id
        self.uids = uids
        self.probe_seen = bytearray(n)
        self.expected = (m if targeted else n * m)
        self.seen = bytearray(m if targeted else n * m)
        self.received = 0
        self.dupes = 0
        self.misdelivered = 0
        self.foreign = 0
        self.ooo = 0
        self.last_seq = array("q", [-1]) * n
        self.lat = array("q")
        self.first_recv = None
        self.last_recv = None
        self.disconnects = 0
        self.closing = False

    def on_msg(self, i, data):
        now = time.monotonic_ns()
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8", "replace")
        parts = data.split("|", 4)
        if len(parts) < 4 or parts[0] != self.run_id:
            self.foreign += 1
            return
        seq = parts[1]
        if seq[:1] == "P":
            self.probe_seen[i] = 1
            return
        seq = int(seq)
        if self.targeted:
            if parts[3] != self.uids[i]:
                self.misdelivered += 1
                return
            idx = seq
        else:
            idx = i * self.m + seq
            if seq < self.last_seq[i]:
                self.ooo += 1
            self.last_seq[i] = seq
        if idx >= len(self.seen):
            self.foreign += 1
            return
        if self.seen[idx]:
            self.dupes += 1
            return
        self.seen[idx] = 1
        self.received += 1
        self.lat.append(now - int(parts[2]))
        if self.first_recv is None:
            self.first_recv = now
        self.last_recv = now


# ---------------------------------------------------------------- clients
class WebsocketsClient:
    name = "websockets"

    def __init__(self, book):
        import websockets
        from websockets.asyncio.client import connect

        self.version = websockets.__version__
        self._connect = connect
        self.book = book
        self.conns = {}
        self.tasks = []

    async def open(self, i, url):
        ws = await self._connect(url, compression=None, ping_interval=None,
                                 open_timeout=30, close_timeout=2, max_size=2 ** 20)
        self.conns[i] = ws
        self.tasks.append(asyncio.ensure_future(self._reader(i, ws)))

    async def _reader(self, i, ws):
        on_msg = self.book.on_msg
        try:
            async for msg in ws:
                on_msg(i, msg)
        except Exception:
            pass
        if not self.book.closing:
            self.book.disconnects += 1

    async def close_all(self, timeout):
        async def c(ws):
            try:
                await ws.close()
            except Exception:
                pass
        try:
            await asyncio.wait_for(asyncio.gather(*(c(w) for w in self.conns.values())), timeout)
        except asyncio.TimeoutError:
            pass
        for t in self.tasks:
            t.cancel()
        for w in self.conns.values():
            try:
                w.transport.abort()
            except Exception:
                pass


class _RawProtocol(asyncio.Protocol):
    """Client side of one websocket: handshake, then unmasked server frames (text/binary/ping/close)."""

    def __init__(self, i, book, request, ready):
        self.i, self.book, self.request, self.ready = i, book, request, ready
        self.buf = bytearray()
        self.upgraded = False
        self.frag = None
        self.transport = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:buf.find(b"\r\n")])
            del buf[:end + 4]
            if b" 101 " not in status + b" ":
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"handshake refused: {status.decode('latin1')}"))
                self.transport.close()
                return
            self.upgraded = True
            if not self.ready.done():
                self.ready.set_result(None)
        pos, n = 0, len(buf)
        on_msg, i = self.book.on_msg, self.i
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln, h = b1 & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, h = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, h = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            masked = b1 & 0x80
            if masked:
                h += 4
            if n - pos < h + ln:
                break
            payload = bytes(buf[pos + h:pos + h + ln])
            if masked:
                key = buf[pos + h - 4:pos + h]
                payload = bytes(c ^ key[k % 4] for k, c in enumerate(payload))
            pos += h + ln
            op = b0 & 0x0F
            if op in (1, 2):
                if b0 & 0x80:
                    on_msg(i, payload)
                else:
                    self.frag = bytearray(payload)
            elif op == 0 and self.frag is not None:
                self.frag += payload
                if b0 & 0x80:
                    on_msg(i, bytes(self.frag))
                    self.frag = None
            elif op == 9:  # ping -> pong (client frames are masked; a zero key keeps the payload as is)
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif op == 8:
                self.send_close()
                self.transport.close()
                break
        del buf[:pos]

    def send_close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"\x88\x82\0\0\0\0\x03\xe8")  # close 1000, masked with a zero key

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before the upgrade: {exc}"))
        if self.upgraded and not self.book.closing:
            self.book.disconnects += 1
        if not self.lost.done():
            self.lost.set_result(None)


class RawClient:
    name = "raw"

    def __init__(self, book):
        self.version = "asyncio"
        self.book = book
        self.protos = {}

    async def open(self, i, url):
        import base64

        u = urlsplit(url)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        key = base64.b64encode(os.urandom(16)).decode()
        host = f"{u.hostname}:{u.port or 80}"
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        _, proto = await loop.create_connection(
            lambda: _RawProtocol(i, self.book, request, ready), u.hostname, u.port or 80)
        try:
            await asyncio.wait_for(ready, 30)
        except BaseException:
            proto.transport.abort()
            raise
        self.protos[i] = proto

    async def close_all(self, timeout):
        for p in self.protos.values():
            p.send_close()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.lost for p in self.protos.values())), timeout)
        except asyncio.TimeoutError:
            pass
        for p in self.protos.values():
            p.transport.abort()


async def redis_pubsub_clients(port):
    """Number of Redis clients holding at least one (p/s)subscription (CLIENT LIST over raw RESP)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
        head = await r.readline()
        body = await r.readexactly(int(head[1:]) + 2)
    finally:
        w.close()
    n = 0
    for line in body.decode().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if any(int(f.get(k, "0") or 0) > 0 for k in ("sub", "psub", "ssub")):
            n += 1
    return n


class PicowsClient:
    name = "picows"

    def __init__(self, book):
        import picows
        from picows import WSListener, WSMsgType, ws_connect

        self.version = picows.__version__
        self.book = book
        self.transports = {}
        self._ws_connect = ws_connect
        on_msg = book.on_msg
        TEXT, BINARY, CLOSE = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CLOSE

        class Listener(WSListener):
            def __init__(self, i):
                self.i = i

            def on_ws_frame(self, transport, frame):
                t = frame.msg_type
                if t is TEXT or t is BINARY:
                    on_msg(self.i, frame.get_payload_as_bytes())
                elif t is CLOSE:
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()

            def on_ws_disconnected(self, transport):
                if not book.closing:
                    book.disconnects += 1

        self.Listener = Listener

    async def open(self, i, url):
        Listener = self.Listener
        transport, _ = await self._ws_connect(lambda: Listener(i), url,
                                              websocket_handshake_timeout=30)
        self.transports[i] = transport

    async def close_all(self, timeout):
        for tr in self.transports.values():
            try:
                tr.send_close()
            except Exception:
                pass
        async def w(tr):
            try:
                await tr.wait_disconnected()
            except Exception:
                pass
        try:
            await asyncio.wait_for(asyncio.gather(*(w(t) for t in self.transports.values())), timeout)
        except asyncio.TimeoutError:
            pass
        for tr in self.transports.values():
            try:
                tr.disconnect()
            except Exception:
                pass


# ---------------------------------------------------------------- publisher
class Publisher:
    def __init__(self, cmd):
        self.cmd = cmd
        self.proc = None
        self.pid = None

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            *shlex.split(self.cmd), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        hello = await self._read(60)
        self.pid = hello.get("pid", self.proc.pid)
        return hello

    async def _read(self, timeout):
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("publisher exited")
        return json.loads(line)

    async def call(self, obj, timeout):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout)

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            try:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), 10)
            except Exception:
                self.proc.kill()
                await self.proc.wait()


# ---------------------------------------------------------------- the run
async def run(a):
    deadline = time.monotonic() + a.max_seconds
    run_id = uuid.uuid4().hex[:8]
    n, m = a.conns, a.messages
    uids = [a.uid_template.format(i=i) for i in range(n)] if a.targeted else None
    book = Book(n, m, a.targeted, run_id, uids)
    client = {"picows": PicowsClient, "websockets": WebsocketsClient, "raw": RawClient}[a.client](book)
    res = {"label": a.label, "url": a.url, "client": f"{client.name} {client.version}",
           "conns": n, "messages": m, "rate": a.rate, "targeted": a.targeted,
           "run_id": run_id}

    pub = Publisher(a.publisher)
    hello = await pub.start()
    res["publisher"] = hello.get("backend")

    server_roots = a.server_pid or []
    if a.warmup:
        # One connection opened and closed before the baseline RSS, so lazy per-process set-up on the first
        # request (Django, the hub) is not counted as per-connection memory. Done the same for every server.
        try:
            await asyncio.wait_for(client.open(-1, a.url.format(i=0, uid=uids[0] if uids else "")), 30)
            book.closing = True
            await client.close_all(5)
            book.closing = False
            client.__init__(book)
        except Exception as e:
            res["warmup_error"] = repr(e)
        await asyncio.sleep(0.5)
    spids = proc_tree(server_roots)
    res["server_procs"] = len(spids)
    res["server_workers"] = sum(len(_children_map().get(p, [])) for p in server_roots)
    redis_pids = [a.redis_pid] if a.redis_pid else []
    rss0 = rss_kb(spids)
    redis0 = rss_kb(redis_pids)

    # ---- connect
    errors = {}
    sem = asyncio.Semaphore(a.connect_concurrency)
    connected = bytearray(n)

    async def one(i):
        url = a.url.format(i=i, uid=uids[i] if uids else "")
        async with sem:
            if time.monotonic() > deadline:
                errors["deadline"] = errors.get("deadline", 0) + 1
                return
            try:
                await client.open(i, url)
                connected[i] = 1
            except Exception as e:
                k = type(e).__name__ + ": " + str(e)[:80]
                errors[k] = errors.get(k, 0) + 1

    spids = proc_tree(server_roots)
    c_cpu0, c_scpu0, c_m0 = self_cpu_s(), cpu_s(spids), machine_busy_s()
    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    t1 = time.monotonic()
    spids = proc_tree(server_roots)
    n_ok = sum(connected)
    res["connected"] = n_ok
    res["connect_s"] = round(t1 - t0, 3)
    res["connect_rate"] = round(n_ok / (t1 - t0), 1) if t1 > t0 else None
    res["connect_errors"] = errors
    res["connect_cpu_pct"] = {
        "loadgen": round(100 * (self_cpu_s() - c_cpu0) / (t1 - t0), 1),
        "server": round(100 * (cpu_s(spids) - c_scpu0) / (t1 - t0), 1),
        "machine": round(100 * (machine_busy_s() - c_m0) / (t1 - t0), 1)}

    # ---- make sure every connection is subscribed (probe through the real path)
    ts0 = time.monotonic()
    tag = 0
    live = [i for i in range(n) if connected[i]]
    while time.monotonic() - ts0 < a.subscribe_timeout and time.monotonic() < deadline:
        missing = [i for i in live if not book.probe_seen[i]]
        if not missing:
            break
        targets = [uids[i] for i in missing] if a.targeted else None
        await pub.call({"op": "probe", "tag": tag, "targets": targets, "run": run_id}, 60)
        tag += 1
        w0 = time.monotonic()
        while time.monotonic() - w0 < 0.5:
            await asyncio.sleep(0.02)
            if all(book.probe_seen[i] for i in missing):
                break
    subscribed = sum(1 for i in live if book.probe_seen[i])
    res["subscribed"] = subscribed
    res["subscribe_s"] = round(time.monotonic() - ts0, 3)
    if a.redis_port:
        try:
            res["redis_pubsub_clients"] = await redis_pubsub_clients(a.redis_port)
        except Exception as e:
            res["redis_pubsub_clients_error"] = repr(e)
    res["probe_rounds"] = tag
    await asyncio.sleep(a.settle)

    spids = proc_tree(server_roots)
    rss1 = rss_kb(spids)
    redis1 = rss_kb(redis_pids)
    res["server_rss_base_kb"] = rss0
    res["server_rss_conn_kb"] = rss1
    res["server_rss_per_conn_kb"] = round((rss1 - rss0) / n_ok, 2) if n_ok else None
    res["redis_rss_per_conn_kb"] = round((redis1 - redis0) / n_ok, 2) if n_ok and redis_pids else None
    if a.hold > 0:
        await asyncio.sleep(min(a.hold, max(0, deadline - time.monotonic())))
        spids = proc_tree(server_roots)
        res["server_rss_after_hold_kb"] = rss_kb(spids)
    res["disconnects_before_publish"] = book.disconnects

    # ---- publish phase
    if m > 0 and subscribed:
        peak = [rss1]
        stop = asyncio.Event()
        cpu_pids = {"server": spids, "redis": redis_pids, "publisher": [pub.pid]}
        cpu_samples = []  # (monotonic_ns, {name: cpu seconds}) every 0.1 s

        def cpu_snapshot():
            d = {k: cpu_s(v) for k, v in cpu_pids.items()}
            d["loadgen"] = self_cpu_s()
            d["machine"] = machine_busy_s()
            return d

        async def sampler():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kb(spids))
                cpu_samples.append((time.monotonic_ns(), cpu_snapshot()))
                await asyncio.sleep(0.1)

        cpu0 = cpu_snapshot()
        lg0 = cpu0["loadgen"]
        tp0 = time.monotonic()
        tp0_ns = time.monotonic_ns()
        samp = asyncio.ensure_future(sampler())
        pub_timeout = max(5.0, deadline - time.monotonic())
        pub_task = asyncio.ensure_future(pub.call(
            {"op": "run", "count": m, "rate": a.rate, "run": run_id, "pad": a.pad,
             "targets": [uids[i % n] for i in range(min(n, m))] if a.targeted else None},
            pub_timeout))
        done = None
        last_count, last_change = -1, time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if done is None and pub_task.done():
                done = pub_task.result()
                last_change = now
            if book.received != last_count:
                last_count, last_change = book.received, now
            if book.received >= book.expected and done is not None:
                break
            if done is not None and now - last_change > a.drain_idle:
                break
            if now > deadline:
                break
        tp1 = time.monotonic()
        res["ended_by"] = ("all-delivered" if book.received >= book.expected else
                           "deadline" if tp1 > deadline else "drain-idle")
        stop.set()
        await samp
        if done is None:
            res["publisher_error"] = "publisher did not finish before the deadline"
            pub_task.cancel()
            done = {}
        wall = tp1 - tp0
        res["cpu_pct_publish_phase"] = {k: round(100 * (cpu_s(v) - cpu0[k]) / wall, 1)
                                        for k, v in cpu_pids.items()}
        res["cpu_pct_publish_phase"]["loadgen"] = round(100 * (self_cpu_s() - lg0) / wall, 1)
        res["cpu_pct_publish_phase"]["machine"] = round(100 * (machine_busy_s() - cpu0["machine"]) / wall, 1)
        # CPU while busy: from the publish start to the first sample after the last
        # delivery (the phase above also includes the idle drain wait).
        if book.last_recv and cpu_samples:
            end = next(((t, c) for t, c in cpu_samples if t >= book.last_recv), cpu_samples[-1])
            busy = (end[0] - tp0_ns) / 1e9
            if busy > 0.2:
                res["cpu_pct_busy"] = {k: round(100 * (end[1][k] - cpu0[k]) / busy, 1) for k in end[1]}
                res["busy_s"] = round(busy, 2)
        res["published"] = done.get("published")
        res["publish_errors"] = done.get("errors")
        if done.get("t1"):
            pdur = (done["t1"] - done["t0"]) / 1e9
            res["publish_s"] = round(pdur, 3)
            res["publish_rate"] = round(done["published"] / pdur, 1) if pdur > 0 else None
        # with --targeted, a connection is sent ceil/floor(M/N) messages
        expected = book.expected
        res["expected"] = expected
        subs = [i for i in live if book.probe_seen[i]]
        if a.targeted:
            sub_uids = {uids[i] for i in subs}
            res["expected_subscribed"] = sum(1 for j in range(m) if uids[j % n] in sub_uids)
        else:
            res["expected_subscribed"] = len(subs) * m
        res["delivered"] = book.received
        res["lost"] = expected - book.received
        res["dupes"], res["out_of_order"] = book.dupes, book.ooo
        res["misdelivered"], res["foreign"] = book.misdelivered, book.foreign
        if book.last_recv and done.get("t0"):
            span = (book.last_recv - done["t0"]) / 1e9
            res["delivery_span_s"] = round(span, 3)
            res["deliveries_per_s"] = round(book.received / span, 1) if span > 0 else None
        lat = sorted(book.lat)
        for q in (50, 95, 99):
            v = pct(lat, q)
            res[f"lat_p{q}_ms"] = round(v / 1e6, 2) if v is not None else None
        res["lat_max_ms"] = round(lat[-1] / 1e6, 2) if lat else None
        # Nudge: publish a few probes after the drain; run messages that arrive
        # only now were stuck somewhere (e.g. in a server-side read buffer).
        if a.nudge and res["lost"] > 0 and time.monotonic() < deadline:
            before = book.received
            for k in range(3):
                await pub.call({"op": "probe", "tag": 10000 + k, "run": run_id,
                                "targets": [uids[i] for i in live] if a.targeted else None}, 30)
                await asyncio.sleep(0.5)
            res["late_after_nudge"] = book.received - before
        spids = proc_tree(server_roots)
        res["server_rss_peak_kb"] = peak[0]
        res["server_rss_growth_kb"] = peak[0] - rss1
        res["server_rss_after_kb"] = rss_kb(spids)
    res["disconnects"] = book.disconnects

    book.closing = True
    await client.close_all(5)
    await pub.stop()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True,
                    help="ws:// URL on a loopback address; may contain {i} and {uid}")
    ap.add_argument("--publisher", required=True,
                    help="command line of the publisher (bench/publisher.py in the anchor's venv)")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--messages", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0, help="msg/s, 0 = as fast as possible")
    ap.add_argument("--targeted", action="store_true",
                    help="message i goes only to connection i %% N (user channel uid_template)")
    ap.add_argument("--uid-template", default="u{i}")
    ap.add_argument("--pad", type=int, default=64, help="payload padding bytes")
    ap.add_argument("--client", choices=["picows", "websockets", "raw"], default="picows")
    ap.add_argument("--warmup", action="store_true",
                    help="open and close one connection before the baseline RSS (lazy set-up not counted)")
    ap.add_argument("--redis-port", type=int, help="count Redis pub/sub clients after subscribing")
    ap.add_argument("--connect-concurrency", type=int, default=100)
    ap.add_argument("--server-pid", type=int, action="append",
                    help="server process (its descendants are included); repeatable")
    ap.add_argument("--redis-pid", type=int)
    ap.add_argument("--subscribe-timeout", type=float, default=30)
    ap.add_argument("--settle", type=float, default=0.5)
    ap.add_argument("--hold", type=float, default=0, help="idle seconds after subscribing")
    ap.add_argument("--drain-idle", type=float, default=5)
    ap.add_argument("--max-seconds", type=float, default=90)
    ap.add_argument("--no-nudge", dest="nudge", action="store_false",
                    help="skip the post-drain probes that reveal stuck (late) messages")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", help="append the JSON result to this file")
    ap.add_argument("--no-uvloop", action="store_true")
    a = ap.parse_args()
    check_loopback(a.url.format(i=0, uid="x"))
    if not (0 < a.conns <= MAX_CONNS) or not (0 <= a.messages <= MAX_MESSAGES):
        sys.exit(f"bounds: 0 < conns <= {MAX_CONNS}, 0 <= messages <= {MAX_MESSAGES}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not a.no_uvloop:
        try:
            import uvloop
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    res = asyncio.run(asyncio.wait_for(run(a), a.max_seconds + 60))
    line = json.dumps(res)
    print(line, flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
