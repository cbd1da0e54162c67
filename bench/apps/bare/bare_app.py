"""The bare transport loop: the ceiling for ws4redis on uWSGI + gevent. No Redis, no Django.

Same transport and the same shape as ws4redis' connection loop (one greenlet per websocket, because uWSGI's
``websocket_send`` acts on the request of the calling greenlet; one wake-up event per socket; a reader greenlet that
queues each message for every socket), with nothing else: no hub, no channels, no policy, no metrics.

Trigger: each worker listens on TCP 127.0.0.1:(BARE_CONTROL_PORT + worker_id - 1). A publisher connects to every
worker's port and writes newline-terminated payloads; each line is sent verbatim, as a text frame, to every websocket
of that worker. The payload is the loadgen's ("<run>|<seq>|<t_ns>|<target>|<pad>"), so latency is measured the same
way as for ws4redis. TCP, not UDP: a burst must not be dropped by a full datagram buffer.

Run (from bench/apps/bare):
  uwsgi --http-socket 127.0.0.1:8101 --gevent 1100 --gevent-early-monkey-patch --processes 1 \
        --module bare_app:application --master --die-on-term --disable-logging
"""
import collections
import os

import gevent
import gevent.event
import gevent.socket
import uwsgi
from uwsgidecorators import postfork

CONTROL_BASE = int(os.environ.get("BARE_CONTROL_PORT", "8190"))
# BARE_FRAMES=1 (experiment, not the default ceiling): each message is framed once (server frames are unmasked, so
# the bytes are the same for every socket) and a wake-up writes all queued frames with one sendall() on a gevent
# socket over the connection's fd (uwsgi.send() is a single raw write(): it drops the rest of a partial write).
FRAMES = os.environ.get("BARE_FRAMES") == "1"


def _frame(payload):
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload

_conns = set()


class _Conn:
    __slots__ = ("queue", "wake")

    def __init__(self):
        self.queue = collections.deque()
        self.wake = gevent.event.Event()


def _dispatch(lines):
    if FRAMES:
        lines = [_frame(line) for line in lines]
    for conn in _conns:
        conn.queue.extend(lines)
        conn.wake.set()


def _control_reader(sock):
    buf = b""
    try:
        while True:
            data = sock.recv(262144)
            if not data:
                return
            buf += data
            if b"\n" in buf:
                *lines, buf = buf.split(b"\n")
                _dispatch(lines)
    finally:
        sock.close()


def _control_server():
    port = CONTROL_BASE + uwsgi.worker_id() - 1
    srv = gevent.socket.socket()
    srv.setsockopt(gevent.socket.SOL_SOCKET, gevent.socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    while True:
        sock, _ = srv.accept()
        gevent.spawn(_control_reader, sock)


@postfork
def _start_control():
    gevent.spawn(_control_server)


def application(environ, start_response):
    uwsgi.websocket_handshake(environ["HTTP_SEC_WEBSOCKET_KEY"], environ.get("HTTP_ORIGIN", ""))
    conn = _Conn()
    _conns.add(conn)
    fd = uwsgi.connection_fd()
    out = gevent.socket.socket(fileno=fd) if FRAMES else None
    watcher = gevent.get_hub().loop.io(fd, 1)
    watcher.start(conn.wake.set)
    queue, wake = conn.queue, conn.wake
    send, recv_nb = uwsgi.websocket_send, uwsgi.websocket_recv_nb
    try:
        while True:
            wake.wait(10.0)
            wake.clear()
            while recv_nb():  # drain the socket (also answers pings); raises OSError once closed
                pass
            if FRAMES:
                if queue:
                    frames = b"".join(queue)
                    queue.clear()
                    out.sendall(frames)
            else:
                while queue:
                    send(queue.popleft())
    except OSError:
        pass
    finally:
        if out is not None:
            out.detach()  # uWSGI owns and closes the fd
        watcher.stop()
        _conns.discard(conn)
    return []
