"""Everything decided before the upgrade: protocol checks, Origin, the Django request, the channel policy.

Every refusal happens here and is a ``HandshakeRefused`` carrying its HTTP status, so a bad request never reaches
the websocket loop and never disturbs other connections.

The request goes through the project's own middleware (``settings.MIDDLEWARE``), so sessions, authentication and
any custom middleware apply exactly as for a view; ``WS4REDIS_PROCESS_REQUEST`` replaces that step (token auth).
Group names come from the session, where a ``user_logged_in`` receiver cached them, so connecting never queries
groups.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core import signals
from django.core.exceptions import PermissionDenied
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host

from ws4redis import settings
from ws4redis.broker.audience import Subscription, parse_flags, validate_facility
from ws4redis.broker.redis_store import get_connection
from ws4redis.exceptions import BadHandshake, ChannelRefused, ForbiddenOrigin, HandshakeRefused, UnsupportedVersion
from ws4redis.integration.streams import check_signed_stream

__all__ = ["Handshake", "check_origin", "check_upgrade", "handshake"]

logger = logging.getLogger("ws4redis.auth")  # its name before the move: logging configurations keep it

V2_PROTOCOL = "ws4redis.v2"


@dataclasses.dataclass(frozen=True)
class Handshake:
    """An accepted websocket request: who it is, what it listens to and publishes on, which wire protocol."""

    request: HttpRequest
    subscription: Subscription
    subscriber: Any  # a RedisSubscriber (WS4REDIS_SUBSCRIBER) holding the channel lists
    subprotocol: str | None
    key: str

    @property
    def listen(self) -> list[str]:
        return list(self.subscriber.channels)

    @property
    def publish(self) -> list[str]:
        return list(self.subscriber.publishers)

    @property
    def identity(self) -> list[tuple[str, str]]:
        """What a revocation can name this connection by: its user and its session."""
        keys: list[tuple[str, str]] = []
        user = getattr(self.request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            keys.append(("user", str(user.get_username())))
        session = getattr(self.request, "session", None)
        session_key = getattr(session, "session_key", None) if session is not None else None
        if session_key:
            keys.append(("session", str(session_key)))
        return keys

    @property
    def session_expiry(self) -> float | None:
        """When the session of an authenticated socket ends (a Unix time), so the socket closes with it."""
        user = getattr(self.request, "user", None)
        session = getattr(self.request, "session", None)
        if session is None or not getattr(user, "is_authenticated", False) or not hasattr(session, "get_expiry_age"):
            return None
        return time.time() + float(session.get_expiry_age())

    @property
    def label(self) -> str:
        """Who the connection is, for logs: the username or 'anonymous' (never the session key)."""
        user = getattr(self.request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return str(user.get_username())
        return "anonymous"


def check_upgrade(environ: dict[str, Any]) -> str:
    """The ``Sec-WebSocket-Key`` of a valid RFC 6455 upgrade request, else 400 or 426."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise BadHandshake("a websocket handshake must be a GET: the client must upgrade to a websocket")
    if environ.get("HTTP_UPGRADE", "").strip().lower() != "websocket":
        raise BadHandshake("not a websocket upgrade request: the client must upgrade to a websocket")
    tokens = {t.strip().lower() for t in environ.get("HTTP_CONNECTION", "").split(",")}
    if "upgrade" not in tokens:
        raise BadHandshake("the Connection header must contain 'Upgrade'")
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != "13":
        raise UnsupportedVersion("only websocket version 13 (RFC 6455) is supported")
    key = str(environ.get("HTTP_SEC_WEBSOCKET_KEY", "")).strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (ValueError, binascii.Error):
        raise BadHandshake("invalid Sec-WebSocket-Key") from None
    return key


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _split_origin(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) origin, the default port filled in; ``None`` for anything else (a
    path, credentials, another scheme, a bad port: a browser never sends those in ``Origin``)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return scheme, host.lower(), _DEFAULT_PORTS[scheme] if port is None else port


def _matches(origin: tuple[str, str, int], pattern: str) -> bool:
    """``origin`` against one entry of ``WS4REDIS_ALLOWED_ORIGINS`` or ``CSRF_TRUSTED_ORIGINS``: scheme, host and
    port all equal; a host ``*.example.com`` (Django's CSRF syntax) also matches every subdomain, not the bare
    domain."""
    wildcard = "://*." in pattern
    wanted = _split_origin(pattern.replace("://*.", "://", 1) if wildcard else pattern)
    if wanted is None or wanted[0] != origin[0] or wanted[2] != origin[2]:
        return False
    return origin[1].endswith("." + wanted[1]) if wildcard else origin[1] == wanted[1]


def _own_origin(environ: dict[str, Any]) -> tuple[str, str, int] | None:
    """The origin the websocket request itself was made to, as Django's ``request.is_secure()`` and
    ``get_host()`` see it (``SECURE_PROXY_SSL_HEADER``, ``USE_X_FORWARDED_HOST``), without building a request."""
    scheme = str(environ.get("wsgi.url_scheme") or "http")
    proxy = getattr(django_settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        header, secure = proxy
        forwarded = environ.get(header)
        if forwarded is not None:
            scheme = "https" if str(forwarded).split(",", 1)[0].strip() == secure else "http"
    host = environ.get("HTTP_X_FORWARDED_HOST") if django_settings.USE_X_FORWARDED_HOST else None
    host = str(host or environ.get("HTTP_HOST") or "")
    return _split_origin(f"{scheme}://{host}") if host else None


def _origin_allowed(origin: str, environ: dict[str, Any]) -> bool:
    """Scheme, host and port compared, as a browser's same-origin policy does: ``http://site:1`` and
    ``https://site`` are other origins than ``http://site:8000``, whatever their host."""
    allowed = settings.get("WS4REDIS_ALLOWED_ORIGINS")
    parsed = _split_origin(origin)
    if parsed is None:
        return False
    if allowed is not None:
        return "*" in allowed or any(_matches(parsed, str(pattern)) for pattern in allowed)
    own = _own_origin(environ)
    if parsed == own:
        return True  # same origin as the page's own host
    if any(_matches(parsed, str(pattern)) for pattern in getattr(django_settings, "CSRF_TRUSTED_ORIGINS", ())):
        return True  # what Django's CSRF check trusts for unsafe requests, it trusts here
    if own is None or parsed[0] != own[0] or parsed[2] != own[2]:
        return False
    # Another host of this site, same scheme and port: ALLOWED_HOSTS decides, except its '*' wildcard, which would
    # let any site in.
    hosts = [h for h in django_settings.ALLOWED_HOSTS if h != "*"]
    if django_settings.DEBUG and not django_settings.ALLOWED_HOSTS:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(f"[{parsed[1]}]" if ":" in parsed[1] else parsed[1])
    return bool(domain) and validate_host(domain, hosts)


def check_origin(environ: dict[str, Any]) -> None:
    """Refuse (403) a browser request from a foreign origin: cross-site websocket hijacking.

    Clients that send no ``Origin`` (not browsers) pass; a browser always sends one.
    """
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return
    if not _origin_allowed(origin, environ):
        raise ForbiddenOrigin(f"origin {origin!r} is not allowed")


class _Accepted(HttpResponse):
    """What the innermost 'view' returns: the request made it through every middleware."""

    def __init__(self, request: HttpRequest) -> None:
        super().__init__()
        self.passed_request = request


class _MiddlewareRunner(BaseHandler):
    """Django's own middleware chain around a terminal step that only records the request.

    Subclassing ``BaseHandler`` is how Django builds handlers; the chain is built once per process.
    """

    def _get_response(self, request: HttpRequest) -> HttpResponse:
        return _Accepted(request)


_runner: _MiddlewareRunner | None = None


def _run_middleware(request: HttpRequest) -> HttpRequest:
    global _runner
    if _runner is None:
        runner = _MiddlewareRunner()
        runner.load_middleware()
        _runner = runner
    response = _runner.get_response(request)
    if isinstance(response, _Accepted):
        return response.passed_request
    # A middleware answered by itself (a redirect to HTTPS, a 403 of its own): refuse with its status.
    refusal = HandshakeRefused(f"refused by middleware with {response.status_code}")
    refusal.status = response.status_code
    refusal.reason = response.reason_phrase
    raise refusal


def build_request(environ: dict[str, Any]) -> HttpRequest:
    """A Django request with ``session`` and ``user`` set by the project's middleware or its hook."""
    request: HttpRequest = WSGIRequest(environ)
    process = settings.hook("WS4REDIS_PROCESS_REQUEST")
    if process is not None:
        process(request)
    else:
        request = _run_middleware(request)
    for attr in ("session", "user"):
        if not hasattr(request, attr):
            setattr(request, attr, None)
    return request


def _authorise(request: HttpRequest, subscription: Subscription) -> Subscription:
    """The secure default policy, then ``WS4REDIS_ALLOWED_CHANNELS``; a refusal is 403, never a shared channel."""
    check_signed_stream(request, subscription)  # WS4REDIS_SIGNED_STREAMS: 403 without a valid signature
    user = getattr(request, "user", None)
    authenticated = bool(user is not None and getattr(user, "is_authenticated", False))
    session = getattr(request, "session", None)
    has_session = bool(getattr(session, "session_key", None)) if session is not None else False
    permissive = settings.get("WS4REDIS_POLICY") == "permissive"
    for kind, audiences in (("subscribe", subscription.subscribe), ("publish", subscription.publish)):
        for audience in audiences:
            if audience == "user" and not authenticated:
                raise ChannelRefused(f"{kind}-user needs a logged-in user")
            if audience == "group" and not authenticated:
                raise ChannelRefused(f"{kind}-group needs a logged-in user")
            if audience == "session" and not has_session:
                raise ChannelRefused(f"{kind}-session needs a session")
            if not authenticated and not permissive and (kind == "publish" or audience != "broadcast"):
                raise ChannelRefused(f"anonymous clients may not {kind}-{audience} (WS4REDIS_POLICY is 'strict')")
    allowed_channels = settings.hook("WS4REDIS_ALLOWED_CHANNELS")
    if allowed_channels is not None:
        try:
            flags = allowed_channels(request, subscription.flags)
        except PermissionDenied as exc:
            raise ChannelRefused(str(exc) or "refused by WS4REDIS_ALLOWED_CHANNELS") from exc
        subscription = subscription.with_flags(flags)
    return subscription


def choose_subprotocol(environ: dict[str, Any]) -> str | None:
    """``ws4redis.v2`` when the client offers it; otherwise the legacy protocol, under the first name the client
    offers, as the original agreed (a browser fails a handshake whose offered subprotocols got no answer), except a
    ``ws4redis.*`` name this server does not speak or a name that is no HTTP token."""
    offered = [p.strip() for p in environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "").split(",") if p.strip()]
    if V2_PROTOCOL in offered:
        return V2_PROTOCOL
    first = offered[0] if offered else ""
    if first and not first.startswith("ws4redis.") and len(first) <= 64 and all(c in _TOKEN for c in first):
        return first
    return None


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def handshake(environ: dict[str, Any]) -> Handshake:
    """Check and authorise one websocket request; raises ``HandshakeRefused`` with the HTTP status to answer."""
    key = check_upgrade(environ)
    prefix = str(settings.get("WEBSOCKET_URL"))
    path = environ.get("PATH_INFO", "")
    facility = validate_facility(
        path[len(prefix) :] if path.startswith(prefix) else "",
        max_length=int(settings.get("WS4REDIS_MAX_FACILITY_LENGTH")),
    )
    check_origin(environ)
    subscription = parse_flags(facility, environ.get("QUERY_STRING", ""))
    signals.request_started.send(sender=Handshake, environ=environ)
    try:
        request = build_request(environ)
        subscription = _authorise(request, subscription)
        subscriber_class = settings.hook("WS4REDIS_SUBSCRIBER")
        assert subscriber_class is not None
        subscriber = subscriber_class(get_connection())
        subscriber.set_pubsub_channels(request, subscription.flags)
        limit = int(settings.get("WS4REDIS_MAX_SUBSCRIPTIONS"))
        if len(subscriber.channels) > limit:
            raise ChannelRefused(f"{len(subscriber.channels)} channels requested, at most {limit} allowed")
    except PermissionDenied as exc:
        if isinstance(exc, HandshakeRefused):
            raise
        raise ChannelRefused(str(exc) or "permission denied") from exc
    finally:
        # Closes this greenlet's database connections: a websocket lives for hours and must not hold one.
        signals.request_finished.send(sender=Handshake)
    return Handshake(request, subscription, subscriber, choose_subprotocol(environ), key)
