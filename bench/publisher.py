#!/usr/bin/env python
"""Publisher process driven by loadgen.py over stdin/stdout (one JSON object per line).

It runs inside the *anchor's* virtualenv, so it publishes the way an application
would with that anchor:

  --backend ws4redis   RedisPublisher(facility=F, broadcast=True | users=[uid])
                       .publish_message(RedisMessage(payload), expire=0)
  --backend ws4redis-next  the same RedisPublisher call, with this repository's ws4redis
                       (run with PYTHONPATH=<repo>; Django project bench/apps/ws4redis_bench)
  --backend bare       the bare transport loop (bench/apps/bare): each payload, newline-terminated,
                       to every worker's TCP control port (BARE_CONTROL_PORT .. + BARE_WORKERS - 1);
                       broadcast only
  --backend redis-raw  plain Redis PUBLISH on ws4redis' channel names
                       ("broadcast:F" / "user:UID:F"; WS4REDIS_PREFIX unset)
  --backend channels   async_to_sync(get_channel_layer().group_send)(group, {...})
                       group = "broadcast.F" / "user.UID.F"
  --backend channels-async  same group_send, awaited on one event loop (variant,
                       to separate async_to_sync overhead from the layer itself)

Commands (stdin):
  {"op": "probe", "tag": K, "targets": null | ["u1", ...]}
  {"op": "run", "count": M, "rate": R (msg/s, 0 = as fast as possible),
   "targets": null | [...], "run": RUNID, "pad": BYTES}
  {"op": "quit"}
Each command is answered by one JSON line on stdout.

Payload (text): "<run>|<seq>|<t_ns>|<target>|<pad>"; t_ns is time.monotonic_ns()
taken right before the publish call (CLOCK_MONOTONIC is system-wide on Linux, so
the load generator can compare it with its own clock).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _make_ws4redis_publisher(facility, app_dir, settings_module):
    """RedisPublisher of the package found on sys.path (the 0.6 anchor's venv, or this repository), one per target."""
    sys.path.insert(0, os.path.join(HERE, "apps", app_dir))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()
    from ws4redis.publisher import RedisPublisher
    from ws4redis.redis_store import RedisMessage

    bcast = RedisPublisher(facility=facility, broadcast=True)
    per_user = {}

    def pub(target, payload):
        if target is None:
            p = bcast
        else:
            p = per_user.get(target)
            if p is None:
                p = per_user[target] = RedisPublisher(facility=facility, users=[target])
        p.publish_message(RedisMessage(payload), expire=0)

    return pub, lambda: None


def make_ws4redis(facility):
    return _make_ws4redis_publisher(facility, "ws4redis_app", "wsproj.settings")


def make_ws4redis_next(facility):
    return _make_ws4redis_publisher(facility, "ws4redis_bench", "benchproj.settings")


def make_bare(facility):
    import socket

    base = int(os.environ.get("BARE_CONTROL_PORT", "8190"))
    ports = [base + k for k in range(int(os.environ.get("BARE_WORKERS", "1")))]
    socks = []

    def connect():
        deadline = time.monotonic() + 10
        for port in ports:
            while True:
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)

    def pub(target, payload):
        if not socks:
            connect()
        line = payload.encode() + b"\n"
        for s in socks:
            s.sendall(line)

    def close():
        for s in socks:
            s.close()

    return pub, close


def make_redis_raw(facility):
    import redis

    r = redis.Redis(host="127.0.0.1", port=int(os.environ.get("BENCH_REDIS_PORT", "6390")))

    def pub(target, payload):
        ch = f"broadcast:{facility}" if target is None else f"user:{target}:{facility}"
        r.publish(ch, payload)

    return pub, r.close


def _group(facility, target):
    return f"broadcast.{facility}" if target is None else f"user.{target}.{facility}"


def make_channels(facility):
    sys.path.insert(0, os.path.join(HERE, "apps", "channels_app"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chproj.settings")
    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    send = async_to_sync(layer.group_send)

    def pub(target, payload):
        send(_group(facility, target), {"type": "bench.message", "text": payload})

    return pub, lambda: None


def make_channels_async(facility):
    sys.path.insert(0, os.path.join(HERE, "apps", "channels_app"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chproj.settings")
    import asyncio

    import django

    django.setup()
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    loop = asyncio.new_event_loop()

    def pub(target, payload):
        loop.run_until_complete(
            layer.group_send(_group(facility, target), {"type": "bench.message", "text": payload})
        )

    return pub, loop.close


BACKENDS = {
    "ws4redis": make_ws4redis,
    "ws4redis-next": make_ws4redis_next,
    "bare": make_bare,
    "redis-raw": make_redis_raw,
    "channels": make_channels,
    "channels-async": make_channels_async,
}


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True, choices=sorted(BACKENDS))
    ap.add_argument("--facility", default="bench")
    a = ap.parse_args()
    pub, close = BACKENDS[a.backend](a.facility)
    reply({"ready": True, "pid": os.getpid(), "backend": a.backend})
    mono = time.monotonic_ns
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            break
        if op == "probe":
            tag = cmd["tag"]
            targets = cmd.get("targets") or [None]
            for t in targets:
                pub(t, f"{cmd.get('run', 'x')}|P{tag}|0|{t if t is not None else '-'}|")
            reply({"ok": True, "sent": len(targets)})
        elif op == "run":
            count, rate = int(cmd["count"]), float(cmd.get("rate") or 0)
            targets = cmd.get("targets")
            run, pad = cmd["run"], "x" * int(cmd.get("pad", 0))
            errors = 0
            cpu0 = time.process_time()
            t0 = mono()
            interval = int(1e9 / rate) if rate > 0 else 0
            for i in range(count):
                if interval:
                    due = t0 + i * interval
                    now = mono()
                    if due > now:
                        time.sleep((due - now) / 1e9)
                tgt = targets[i % len(targets)] if targets else None
                ts = mono()
                try:
                    pub(tgt, f"{run}|{i}|{ts}|{tgt if tgt is not None else '-'}|{pad}")
                except Exception as e:  # keep going, report the count
                    errors += 1
                    if errors <= 3:
                        sys.stderr.write(f"publish error: {e!r}\n")
            t1 = mono()
            reply({"done": True, "t0": t0, "t1": t1, "published": count - errors,
                   "errors": errors, "cpu_s": time.process_time() - cpu0})
        else:
            reply({"error": f"unknown op {op}"})
    close()


if __name__ == "__main__":
    main()
