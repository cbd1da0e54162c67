"""``manage.py runwebsocket``: the gevent websocket server for the split deployment (Django served elsewhere).

One listening socket is made first and shared by ``--workers`` forked processes, each with its own gevent loop,
hub and Redis pub/sub connection. Each worker monkey-patches itself after the fork (never the supervising
process, which only forks, forwards signals and restarts a worker that died).

SIGTERM (or SIGINT) is a graceful shutdown: stop accepting, tell every websocket client to come back later (a
``ws4redis.v2`` client gets ``{"type": "shutdown", "reconnect_in": ms}``, every client a close 1001 with
``reconnect_in=<ms>`` as its reason, the delay drawn at random within ``--reconnect-window`` so that clients do
not all return at once), wait up to ``--grace`` seconds for the closes, then exit.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ws4redis import settings
from ws4redis.servers.gevent_server import listen

__all__ = ["Command"]


def parse_bind(value: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces) to ``(host, port)``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise CommandError(f"--bind {value!r}: expected HOST:PORT")
    return (host or "0.0.0.0"), int(port)


class Command(BaseCommand):
    help = "Serve websockets with gevent + wsproto (Django itself is served by another server)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8001", help="HOST:PORT to listen on (default %(default)s)")
        parser.add_argument("--workers", type=int, default=1, help="worker processes (default %(default)s)")
        parser.add_argument("--with-django", action="store_true", help="also serve Django for other paths")
        parser.add_argument("--grace", type=float, default=10.0,
                            help="seconds to wait for websockets to close on SIGTERM (default %(default)s)")
        parser.add_argument("--reconnect-window", type=float, default=10.0,
                            help="clients are told to reconnect within this many seconds (default %(default)s)")
        parser.add_argument("--backlog", type=int, default=1024)

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = parse_bind(options["bind"])
        workers = max(1, int(options["workers"]))
        try:
            sock = listen(host, port, backlog=options["backlog"])
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['bind']}: {exc}") from exc
        bound = sock.getsockname()[1]
        self.stdout.write(
            f"ws4redis runwebsocket: ws://{host}:{bound}{settings.get('WEBSOCKET_URL')}<facility>, "
            f"{workers} worker(s), pid {os.getpid()}"
        )
        self.stdout.flush()
        if workers == 1:
            serve(sock, options)
        else:
            supervise(sock, workers, options)


def serve(sock: Any, options: dict[str, Any]) -> None:
    """One worker: a gevent WSGI server on ``sock`` until SIGTERM/SIGINT, then a graceful shutdown."""
    from ws4redis.servers.gevent_server import patch

    patch()
    import gevent
    import gevent.socket

    if not isinstance(sock, gevent.socket.socket):  # made before the fork, by the unpatched supervisor
        sock = gevent.socket.socket(fileno=sock.detach())

    from ws4redis.runtime.gevent.hub import reset_hub
    from ws4redis.servers.gevent_server import GeventDispatcher, make_server

    dispatcher = GeventDispatcher(serve_django=bool(options.get("with_django")))
    server = make_server(sock, dispatcher, log=None)
    grace = float(options.get("grace", 10.0))
    window = float(options.get("reconnect_window", 10.0))
    stopping: list[bool] = []

    def drain() -> None:
        server.close()  # stop accepting; the listening socket stays open in the other workers
        closed = dispatcher.transports.shutdown(window=window, grace=grace)
        sys.stdout.write(f"ws4redis runwebsocket: pid {os.getpid()} closing {closed} websocket(s)\n")
        sys.stdout.flush()
        dispatcher.transports.wait_closed(grace)  # idle websockets hold no request greenlet for stop() to wait on
        server.stop(timeout=grace)

    def on_signal() -> None:
        if not stopping:
            stopping.append(True)
            gevent.spawn(drain)

    gevent.signal_handler(signal.SIGTERM, on_signal)
    gevent.signal_handler(signal.SIGINT, on_signal)
    try:
        server.serve_forever()
    finally:
        reset_hub()


def supervise(sock: Any, workers: int, options: dict[str, Any]) -> None:
    """Fork ``workers`` servers on the shared socket; forward SIGTERM/SIGINT; restart a worker that dies."""
    children: set[int] = set()
    stopping: list[int] = []

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                serve(sock, options)
            except BaseException:  # a worker must never return into the supervisor's code
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.add(pid)

    def forward(signum: int, frame: Any) -> None:
        stopping.append(signum)
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for _ in range(workers):
        spawn()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if not stopping:
            sys.stderr.write(f"ws4redis runwebsocket: worker {pid} exited ({status}); starting another\n")
            time.sleep(1.0)
            spawn()
    sock.close()
