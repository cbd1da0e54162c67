#!/usr/bin/env python
"""One load-generator process of the scale bench (S6/S7): its share of the websockets, from its own source address.

Run by bench/scale/scale.py (never alone), with picows on uvloop (/tmp/bench-venvs/loadgen, bench/setup_anchors.sh):
the cheapest client per socket, so that the clients are not the limit. Socket ``g`` (a global index) connects to
``ports[g % len(ports)]`` on 127.0.0.1 from ``--source`` (127.0.0.2, 127.0.0.3, ...: each client has its own
ephemeral port range) with the cookie of session ``g``. Loopback only; bounded: at most 19,900 sockets (the
descriptor limit of this machine is 20,000 per process) and a hard deadline, after which it exits by itself.

Commands on stdin, one JSON object a line; one JSON answer a line on stdout:
  {"op": "connect", "first": G0, "count": N}   open sockets G0 .. G0+N-1 -> connected, errors, seconds, CPU
  {"op": "close"}                              close every socket (the warm-up)
  {"op": "status"}                             open sockets, disconnects, CPU seconds so far
  {"op": "reset"}                              forget what was received (before S7)
  {"op": "stats"}                              per message sequence: sockets reached, first/last arrival (ns)
  {"op": "quit"}                               close everything and exit
Messages are ``scale|<seq>|<publish monotonic ns>|...``; CLOCK_MONOTONIC is the same clock in every process.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from array import array

MAX_SOCKETS = 19900


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class State:
    def __init__(self) -> None:
        self.transports: dict[int, object] = {}
        self.disconnects = 0
        self.closing = False
        self.reset()

    def reset(self) -> None:
        self.count: dict[int, int] = {}  # seq -> sockets that received it
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.dupes = 0
        self.foreign = 0
        self.last_seq = array("i", [-1]) * (MAX_SOCKETS + 1)  # per socket of this client (index g - first)

    def on_msg(self, i: int, payload: bytes) -> None:
        now = time.monotonic_ns()
        parts = payload.split(b"|", 2)
        if len(parts) < 3 or parts[0] != b"scale":
            self.foreign += 1
            return
        seq = int(parts[1])
        if self.last_seq[i] >= seq:
            self.dupes += 1
            return
        self.last_seq[i] = seq
        count = self.count
        if seq in count:
            count[seq] += 1
        else:
            count[seq] = 1
            self.first[seq] = now
        self.last[seq] = now


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="loopback source address, e.g. 127.0.0.2")
    ap.add_argument("--ports", required=True, help="comma-separated server ports on 127.0.0.1")
    ap.add_argument("--path", default="/ws/scale?subscribe-broadcast")
    ap.add_argument("--cookies", required=True, help="file: one session key a line (line g = socket g)")
    ap.add_argument("--concurrency", type=int, default=256, help="handshakes in flight at most")
    ap.add_argument("--deadline", type=float, default=1800, help="seconds: exit by itself after that")
    a = ap.parse_args()
    if not a.source.startswith("127."):
        sys.exit("loopback source addresses only")

    from picows import WSListener, WSMsgType, ws_connect

    ports = [int(p) for p in a.ports.split(",")]
    with open(a.cookies) as f:
        keys = f.read().split()
    st = State()
    loop = asyncio.get_running_loop()
    loop.call_later(a.deadline, lambda: os._exit(3))
    TEXT, BINARY, CLOSE = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CLOSE

    class Listener(WSListener):
        __slots__ = ("i",)

        def __init__(self, i: int) -> None:
            self.i = i  # this client's own index of the socket

        def on_ws_frame(self, transport, frame):  # type: ignore[no-untyped-def]
            t = frame.msg_type
            if t is TEXT or t is BINARY:
                st.on_msg(self.i, frame.get_payload_as_bytes())
            elif t is CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def on_ws_disconnected(self, transport):  # type: ignore[no-untyped-def]
            if not st.closing:
                st.disconnects += 1

    async def connect(first: int, count: int) -> dict:
        count = min(count, MAX_SOCKETS - len(st.transports))
        sem = asyncio.Semaphore(a.concurrency)
        errors: dict[str, int] = {}
        done_at = array("d")

        async def one(g: int) -> None:
            url = f"ws://127.0.0.1:{ports[g % len(ports)]}{a.path}"
            async with sem:
                try:
                    tr, _ = await ws_connect(
                        lambda: Listener(g - first), url, websocket_handshake_timeout=30, local_addr=(a.source, 0),
                        read_buffer_init_size=1024,  # 16 KB by default: 300 MB per 19,000 sockets
                        extra_headers={"Cookie": f"sessionid={keys[g]}"})
                except Exception as e:  # counted, never silent
                    k = f"{type(e).__name__}: {str(e)[:80]}"
                    errors[k] = errors.get(k, 0) + 1
                    return
                st.transports[g] = tr
                done_at.append(time.monotonic())

        c0, t0 = cpu_s(), time.monotonic()
        await asyncio.gather(*(one(g) for g in range(first, first + count)))
        t1 = time.monotonic()
        return {"connected": len(done_at), "errors": errors, "t0": t0, "t1": t1, "seconds": round(t1 - t0, 3),
                "cpu_s": round(cpu_s() - c0, 3), "done_at": [round(x, 3) for x in done_at[:: max(1, len(done_at) // 200)]]}

    async def close_all() -> None:
        st.closing = True
        for tr in st.transports.values():
            try:
                tr.send_close()
            except Exception:
                pass

        async def w(tr):  # type: ignore[no-untyped-def]
            try:
                await tr.wait_disconnected()
            except Exception:
                pass
        if st.transports:
            try:
                await asyncio.wait_for(asyncio.gather(*(w(t) for t in st.transports.values())), 20)
            except asyncio.TimeoutError:
                pass
        for tr in st.transports.values():
            try:
                tr.disconnect()
            except Exception:
                pass
        st.transports.clear()
        st.closing = False

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout

    def answer(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    answer({"ready": True, "pid": os.getpid(), "source": a.source})
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "connect":
            answer(await connect(int(cmd["first"]), int(cmd["count"])))
        elif op == "close":
            await close_all()
            answer({"closed": True})
        elif op == "status":
            answer({"open": len(st.transports) - st.disconnects, "sockets": len(st.transports),
                    "disconnects": st.disconnects, "cpu_s": round(cpu_s(), 3)})
        elif op == "reset":
            st.reset()
            answer({"reset": True})
        elif op == "stats":
            answer({"count": st.count, "first": st.first, "last": st.last, "dupes": st.dupes,
                    "foreign": st.foreign, "disconnects": st.disconnects})
        elif op == "quit":
            await close_all()
            answer({"bye": True})
            break


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
