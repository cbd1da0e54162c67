"""Profiling aid (not used by run.sh): ws4redis.wsgi:application plus ``GET /memprobe?n=25``, which answers the top
``n`` allocation sites (tracemalloc, by line) that grew since the previous probe, and the traced total.

  PYTHONTRACEMALLOC=25 uwsgi ... --module benchproj.memprobe:application
  curl 127.0.0.1:8111/memprobe      # baseline; connect N sockets; curl again: growth per site / N = bytes per socket
"""
import tracemalloc

from ws4redis.wsgi import application as _ws4redis

_last = None


def application(environ, start_response):
    global _last
    if environ.get("PATH_INFO") != "/memprobe":
        return _ws4redis(environ, start_response)
    if not tracemalloc.is_tracing():
        tracemalloc.start(25)
    query = environ.get("QUERY_STRING") or ""
    if "gc" in query:  # ?gc: a full collection first, to tell cyclic garbage from what is really held
        import gc

        gc.collect()
    if "types" in query:  # ?types: live objects by type (gc-tracked ones), most numerous first
        return _types(start_response)
    n = int(query.split("n=")[-1].split("&")[0]) if "n=" in query else 25
    snap = tracemalloc.take_snapshot()
    lines = [f"traced {tracemalloc.get_traced_memory()[0]} bytes"]
    if _last is not None:
        for stat in snap.compare_to(_last, "traceback")[:n]:
            lines.append(f"{stat.size_diff:>10} B {stat.count_diff:>7} blocks")
            lines += ["      " + l for l in stat.traceback.format()[-8:]]
    _last = snap
    body = ("\n".join(lines) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _types(start_response):
    import collections
    import gc

    gc.collect()
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    body = "".join(f"{c:>8} {name}\n" for name, c in counts.most_common(60)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
