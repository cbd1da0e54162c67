"""A bare echo on the wsproto transport (no Redis, no Django request): Autobahn measures the transport alone.

``python bench/autobahn/echo_app.py PORT``. Text comes back as text and binary as binary (``last_text``), as through
the ws4redis facility echo, where the frame type travels in ws4redis' envelope (docs/protocol.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def main(port: int) -> None:
    from gevent import monkey

    monkey.patch_all()
    from ws4redis.server import SOCKET_KEY, make_server
    from ws4redis.transports.wsproto import TransportOptions, WsprotoTransport

    options = TransportOptions(max_message_size=32 * 1024 * 1024)

    def echo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        import gevent
        import gevent.event
        import gevent.hub

        key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
        transport = WsprotoTransport(environ[SOCKET_KEY], environ, key, options)
        transport.accept(None)
        ready = gevent.event.Event()
        watcher = gevent.hub.get_hub().loop.io(transport.fileno(), 1)
        watcher.start(ready.set)
        code = 1000
        try:
            while True:
                if transport.pending:  # the call's frame budget was spent: those frames raise no readability event
                    gevent.sleep(0)
                else:
                    ready.wait()
                ready.clear()
                while (data := transport.receive_nowait()) is not None:
                    transport.send(data, text=transport.last_text)
        except Exception as exc:  # ConnectionClosed ends the echo
            code = getattr(exc, "code", 1011)
        finally:
            watcher.stop()
            transport.close(code)
        return []

    make_server(("127.0.0.1", port), echo).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
