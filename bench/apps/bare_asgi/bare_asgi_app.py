"""The bare ASGI websocket loop: the ceiling for ws4redis on uvicorn. No Redis, no Django.

The role of bench/apps/bare/bare_app.py (the uWSGI ceiling), on uvicorn: accept every websocket, and send each line
written to the control port, verbatim, as a text frame to every open websocket. One coroutine per websocket (the ASGI
``send`` belongs to the connection's own task), one queue per socket that a reader fills, nothing else: no hub, no
channels, no policy, no metrics. Whatever ws4redis' ASGI driver costs on top of uvicorn is the gap to this loop.

Trigger: TCP 127.0.0.1:BARE_CONTROL_PORT (one process), newline-terminated payloads, written by
``publisher.py --backend bare`` (BARE_WORKERS=1). The payload is the loadgen's ("<run>|<seq>|<t_ns>|<target>|<pad>"),
so latency and loss are measured as for every other target. The control server starts at the lifespan's startup.

Run (from bench/apps/bare_asgi):
  uvicorn bare_asgi_app:application --loop uvloop --http httptools --ws websockets-sansio --port 8111
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

CONTROL_PORT = int(os.environ.get("BARE_CONTROL_PORT", "8190"))
# BARE_ASGI_IDLE=1: accept, then only await the disconnect (no queue, no second task): the server's own idle
# websocket, the floor of S2 on this server (such a socket receives nothing: S2 only).
IDLE_ONLY = os.environ.get("BARE_ASGI_IDLE") == "1"

_queues: set[asyncio.Queue[str | None]] = set()
_control: list[asyncio.AbstractServer] = []


async def _control_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    buf = b""
    try:
        while True:
            data = await reader.read(262144)
            if not data:
                return
            buf += data
            if b"\n" in buf:
                *lines, buf = buf.split(b"\n")
                texts = [line.decode() for line in lines]
                for queue in _queues:
                    for text in texts:
                        queue.put_nowait(text)
    finally:
        writer.close()


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _control.append(await asyncio.start_server(_control_reader, "127.0.0.1", CONTROL_PORT, backlog=16))
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for server in _control:
                server.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _pump(receive: Any, queue: asyncio.Queue[str | None]) -> None:
    """Reads the client's frames (pings are answered by uvicorn); the disconnect ends the sender."""
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            queue.put_nowait(None)
            return


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    if IDLE_ONLY:
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    _queues.add(queue)
    reader = asyncio.ensure_future(_pump(receive, queue))
    try:
        while True:
            text = await queue.get()
            if text is None:
                return
            await send({"type": "websocket.send", "text": text})
    except OSError:
        pass
    finally:
        _queues.discard(queue)
        reader.cancel()
