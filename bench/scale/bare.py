#!/usr/bin/env python
"""The floor of the scale bench (issue 22): a websocket server that does nothing but accept and fan out.

``scale.py --server bare`` runs P of these in place of ws4redis' workers, with the same clients, the same Redis and
the same S7 publishes, to measure what this machine gives before any ws4redis, Django or uWSGI code runs: no
authentication (the cookie is ignored), no channel policy, no per-socket state but the transport, and each message
from Redis written to every socket as it comes, the frame built by picows' C code. picows on uvloop is the cheapest
websocket server Python has; what it cannot reach on these two cores, no server written in Python reaches here.

Runs under the load generator's venv (/tmp/bench-venvs/loadgen: picows, uvloop, redis-py). Loopback only; exits by
itself after ``--deadline`` seconds, and on SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal

CHANNEL = "broadcast:scale"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--deadline", type=float, default=1800)
    a = ap.parse_args()

    import redis.asyncio as aioredis
    from picows import WSListener, WSMsgType, WSUpgradeRequest, ws_create_server

    loop = asyncio.get_running_loop()
    loop.call_later(a.deadline, lambda: os._exit(3))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sockets: set = set()
    TEXT = WSMsgType.TEXT

    class Listener(WSListener):
        def on_ws_connected(self, transport):  # type: ignore[no-untyped-def]
            sockets.add(transport)

        def on_ws_frame(self, transport, frame):  # type: ignore[no-untyped-def]
            if frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif frame.msg_type is WSMsgType.PING:
                transport.send_pong(frame.get_payload_as_bytes())

        def on_ws_disconnected(self, transport):  # type: ignore[no-untyped-def]
            sockets.discard(transport)

    def listener_for(request: WSUpgradeRequest) -> WSListener:
        return Listener()

    server = await ws_create_server(listener_for, "127.0.0.1", a.port, backlog=4096)
    client = aioredis.Redis(port=a.redis_port)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)

    async def fan_out() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            data = message["data"]
            for transport in tuple(sockets):
                transport.send(TEXT, data)

    task = asyncio.create_task(fan_out())
    await stop.wait()
    task.cancel()
    server.close()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main())
