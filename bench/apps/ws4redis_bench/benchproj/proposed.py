"""Prototype of two fixes proposed to the core (docs/benchmarks.md), applied by monkeypatching, FOR MEASUREMENT ONLY.

Target ``ws4redis-proposed-1w`` of bench/run.sh serves ``benchproj.proposed:application``. Nothing here is used by
ws4redis itself; the real fixes belong in ws4redis/redis_store.py, ws4redis/connection.py and
ws4redis/transports/uwsgi.py.

1. ``redis_store.get_connection()`` returns one ``redis.Redis`` per process instead of a new client per call: each
   client builds its own ~200-entry ``response_callbacks`` dict (~13 KB, redis-py 8), and every websocket keeps one
   (tracemalloc: redis/client.py:540, 20.6 MB over ~1,556 sockets).
2. Batched writes: while ``Connection._drain_queue`` runs, ``UwsgiTransport.send`` only frames the message
   (RFC 6455 server frames are unmasked, so a frame is header + payload); the batch then goes out with one cooperative
   ``sendall`` on a gevent socket over the connection's fd (detached on close; uWSGI owns the fd). One syscall and no
   uWSGI call per message. Not ``uwsgi.send()``: that is a single unchecked write() and loses the rest of a partial
   write.
"""
import os

import gevent.socket

from ws4redis import redis_store
from ws4redis.connection import Connection
from ws4redis.exceptions import ConnectionClosed
from ws4redis.transports.uwsgi import UwsgiTransport

# -- 1. one client per process ---------------------------------------------------------------------------------
_orig_get_connection = redis_store.get_connection
_client = None


def get_connection():
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), _orig_get_connection())
    return _client[1]


for _mod in ("ws4redis.redis_store", "ws4redis.auth", "ws4redis.connection", "ws4redis.quota", "ws4redis.revocation"):
    try:
        _m = __import__(_mod, fromlist=["x"])
    except ImportError:
        continue
    if hasattr(_m, "get_connection"):
        _m.get_connection = get_connection

# -- 2. one write per wake-up --------------------------------------------------------------------------------------
_orig_send = UwsgiTransport.send
_orig_close = UwsgiTransport.close
_orig_drain = Connection._drain_queue


def _frame(data, text):
    op = 0x81 if text else 0x82
    n = len(data)
    if n < 126:
        return bytes((op, n)) + data
    if n < 65536:
        return bytes((op, 126)) + n.to_bytes(2, "big") + data
    return bytes((op, 127)) + n.to_bytes(8, "big") + data


def send(self, data, *, text):
    batch = self.__dict__.get("_batch")
    if batch is None:
        return _orig_send(self, data, text=text)
    batch.append(_frame(data, text))


def close(self, code, reason=""):
    sock = self.__dict__.pop("_gsock", None)
    if sock is not None:
        sock.detach()
    return _orig_close(self, code, reason)


def _drain_queue(self):
    t = self.transport
    t._batch = []
    try:
        _orig_drain(self)
    finally:
        batch, t._batch = t._batch, None
        if batch:
            sock = t.__dict__.get("_gsock")
            if sock is None:
                sock = t._gsock = gevent.socket.socket(fileno=t.fileno())
            try:
                sock.sendall(b"".join(batch))
            except OSError as exc:
                raise ConnectionClosed(1006, str(exc)) from exc


UwsgiTransport.send = send
UwsgiTransport.close = close
Connection._drain_queue = _drain_queue

from ws4redis.wsgi import application  # noqa: E402,F401
