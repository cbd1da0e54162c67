"""Profiling aid (not used by run.sh): the ASGI application of ``benchproj.asgi`` plus ``GET /memprobe?n=25``, which
answers the top ``n`` allocation sites (tracemalloc) that grew since the previous probe, and the traced total; the
ASGI counterpart of ``memprobe.py``.

  PYTHONTRACEMALLOC=25 uvicorn benchproj.asgi_memprobe:application --loop uvloop --http httptools ...
  curl 127.0.0.1:8111/memprobe      # baseline; connect N sockets; curl again: growth per site / N = bytes per socket

``?gc`` runs a full collection first; ``?types`` answers the live gc-tracked objects by type instead;
``?group=filename`` groups by file (whose code allocated: uvicorn, websockets, asyncio, ws4redis).
"""

from __future__ import annotations

import collections
import gc
import tracemalloc
from typing import Any

from benchproj.asgi import application as _app

_last: list[Any] = []


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http" or scope["path"] != "/memprobe":
        await _app(scope, receive, send)
        return
    query = scope.get("query_string", b"").decode()
    params = dict(p.partition("=")[::2] for p in query.split("&") if p)
    if "gc" in params or "types" in params:
        gc.collect()
    if "types" in params:
        counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        body = "".join(f"{c:>8} {name}\n" for name, c in counts.most_common(int(params.get("n") or 60)))
    else:
        if not tracemalloc.is_tracing():
            tracemalloc.start(25)
        snap = tracemalloc.take_snapshot()
        lines = [f"traced {tracemalloc.get_traced_memory()[0]} bytes"]
        if _last:
            group = params.get("group") or "traceback"
            for stat in snap.compare_to(_last[0], group)[: int(params.get("n") or 25)]:
                lines.append(f"{stat.size_diff:>10} B {stat.count_diff:>7} blocks")
                lines += ["      " + line for line in stat.traceback.format()[-int(params.get("depth") or 8):]]
        _last[:] = [snap]
        body = "\n".join(lines) + "\n"
    data = body.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
