"""The ASGI side of the handshake: an ASGI scope becomes the WSGI environ that ``ws4redis.integration.auth`` already
judges.

Every decision stays in ``ws4redis.integration.auth`` (upgrade checks, Origin, the project's ``MIDDLEWARE`` on a Django
request,
the channel policy, ``WS4REDIS_ALLOWED_CHANNELS``) and ``ws4redis.integration.hooks`` (the connect hook), so a
websocket is
accepted or refused for the same reasons, with the same statuses, under uWSGI and under any ASGI server. Those steps
are synchronous (sessions and users come from the database, middleware may be sync), so they run in Django's sync
thread through asgiref, as Django's own ASGI handler runs sync middleware: the event loop never blocks on them. The
connect hook is user code that may wait on anything: it runs in a worker thread of its own under
``WS4REDIS_HOOK_TIMEOUT``, so a slow one holds only its own handshake.

Why an environ and not Django's ``ASGIRequest``: ``auth`` builds its request from an environ, so one translation here
keeps a single code path for both worlds. The translation follows PEP 3333: header names as ``HTTP_*``, the path as
latin-1-decoded UTF-8 bytes (what a WSGI server hands Django), repeated headers joined.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["environ_of", "path_of", "run_handshake"]

logger = logging.getLogger(__name__)

# What the ASGI server already checked before it handed over a websocket scope. HTTP/2 and HTTP/3 websockets
# (RFC 8441, 9220) carry none of these headers; an HTTP/1.1 upgrade carries them, and then they are checked as given.
_UPGRADED = {
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
    "HTTP_SEC_WEBSOCKET_KEY": "AAAAAAAAAAAAAAAAAAAAAA==",  # 16 zero bytes: any valid key, the server answered it
}


def path_of(scope: Mapping[str, Any]) -> str:
    """The request path below the application's mount point (``root_path``), as WSGI's ``PATH_INFO`` has it."""
    path = str(scope.get("path") or "/")
    root = str(scope.get("root_path") or "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    environ: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = bytes(name_bytes).decode("latin-1").upper().replace("-", "_")
        value = bytes(value_bytes).decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        if key in environ:
            # Cookies split over several header lines (HTTP/2) are one cookie string; other headers join with ','.
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


def environ_of(scope: Mapping[str, Any]) -> dict[str, Any]:
    """A WSGI environ of an ASGI ``http`` or ``websocket`` scope (no body: a websocket handshake has none)."""
    server = scope.get("server") or ("localhost", None)
    client = scope.get("client") or ("", 0)
    scheme = str(scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http"))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": str(scope.get("method") or "GET"),
        "SCRIPT_NAME": str(scope.get("root_path") or "").encode().decode("latin-1"),
        "PATH_INFO": path_of(scope).encode().decode("latin-1"),
        "QUERY_STRING": bytes(scope.get("query_string") or b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else (443 if scheme in ("https", "wss") else 80)),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version') or '1.1'}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if scheme in ("https", "wss") else "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    environ.update(_headers(scope.get("headers") or ()))
    if scope["type"] == "websocket":
        for key, value in _UPGRADED.items():
            environ.setdefault(key, value)
    return environ


def _handshake_sync(scope: Mapping[str, Any]) -> Any:
    from ws4redis.integration.auth import handshake

    return handshake(environ_of(scope))


async def run_handshake(scope: Mapping[str, Any]) -> Any:
    """``ws4redis.integration.auth.handshake`` in Django's sync thread, then the connect hook, for an ASGI websocket
    scope.

    Returns the ``Handshake``; raises ``HandshakeRefused`` with the status to answer.
    """
    from asgiref.sync import sync_to_async

    accepted = await sync_to_async(_handshake_sync, thread_sensitive=True)(scope)
    await _connect_hook(accepted)  # WS4REDIS_HOOKS "connect": may refuse before the upgrade, as on WSGI
    return accepted


async def _connect_hook(accepted: Any) -> None:
    """The connect hook in a worker thread of its own, bounded by ``WS4REDIS_HOOK_TIMEOUT`` as ``gevent.Timeout``
    bounds it under gevent (which cannot fire in a thread): past it the handshake is refused 500. In Django's one
    sync thread a slow hook would hold every other handshake of the process; the thread itself runs on to the
    hook's end, as Python cannot interrupt it."""
    import asyncio

    from ws4redis import metrics, settings
    from ws4redis.exceptions import HandshakeRefused
    from ws4redis.integration.hooks import connect_or_refuse, hooks_for

    facility = accepted.subscription.facility
    if hooks_for(facility).connect is None:
        return
    timeout = settings.get("WS4REDIS_HOOK_TIMEOUT")
    try:
        await asyncio.wait_for(asyncio.to_thread(connect_or_refuse, accepted), float(timeout) if timeout else None)
    except asyncio.TimeoutError:
        metrics.DROPPED.labels("connect_hook_failed").inc()
        logger.error("ws4redis: connect hook of %r took over %ss (WS4REDIS_HOOK_TIMEOUT)", facility, timeout)
        refusal = HandshakeRefused("internal error")
        refusal.status, refusal.reason = 500, "Internal Server Error"
        raise refusal from None
