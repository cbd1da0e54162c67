"""Fixtures: a real redis-server, real uWSGI servers, users with real session cookies, websocket clients."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket  # websocket-client

from tests.servers import RedisServer, UwsgiServer, raise_fd_limit, stop_all

raise_fd_limit()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    from django.conf import settings

    server = RedisServer(port=settings.REDIS_PORT)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_redis(request: pytest.FixtureRequest) -> None:
    """Every test that uses Redis starts with no kept messages."""
    if "redis_server" in request.fixturenames:
        client = request.getfixturevalue("redis_server").client()
        client.flushall()
        client.close()


_open_sockets: list[websocket.WebSocket] = []


@pytest.fixture(autouse=True)
def _close_websockets() -> Iterator[None]:
    """Close every websocket a test opened, whatever the test did."""
    yield
    while _open_sockets:
        ws = _open_sockets.pop()
        try:
            ws.close(timeout=1)
        except (OSError, websocket.WebSocketException):
            pass
        ws.shutdown()  # close() does nothing once a close frame was received: the socket itself is closed here


@pytest.fixture(scope="session")
def uwsgi_factory(
    redis_server: RedisServer, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[Callable[..., UwsgiServer]]:
    """Start (once per distinct configuration) a uWSGI server of the test project."""
    started: dict[str, UwsgiServer] = {}

    def start(overrides: dict[str, Any] | None = None, **kwargs: Any) -> UwsgiServer:
        key = json.dumps([overrides or {}, kwargs], sort_keys=True, default=str)
        if key not in started:
            started[key] = UwsgiServer(overrides=overrides, **kwargs)
        return started[key]

    yield start
    stop_all(started.values())


@pytest.fixture
def server(uwsgi_factory: Callable[..., UwsgiServer]) -> UwsgiServer:
    """The default uWSGI server (one worker)."""
    return uwsgi_factory()


class People:
    """Users with groups and logged-in sessions (cookies made by Django's own login path)."""

    def __init__(self) -> None:
        from django.contrib.auth.models import Group, User

        red, _ = Group.objects.get_or_create(name="red")
        blue, _ = Group.objects.get_or_create(name="blue")
        self.users = {}
        for name, group in (("alice", red), ("bob", blue), ("carol", red)):
            user = User.objects.create_user(name, password="pw")
            user.groups.add(group)
            self.users[name] = user
        self._cookies: dict[str, str] = {}

    def cookie(self, name: str) -> str:
        """A ``sessionid=...`` cookie of a fresh login of ``name`` (each call is a new session)."""
        from django.conf import settings
        from django.test import Client

        client = Client()
        client.force_login(self.users[name])
        return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    @staticmethod
    def session_key(cookie: str) -> str:
        return cookie.split("=", 1)[1]


@pytest.fixture
def people(transactional_db: Any) -> People:
    return People()


def connect(server: UwsgiServer, path: str, *, cookie: str | None = None, origin: str | None = None,
            subprotocols: list[str] | None = None, header: list[str] | None = None,
            timeout: float = 5.0) -> websocket.WebSocket:
    """A real websocket client connected to ``server``; raises ``WebSocketBadStatusException`` on refusal."""
    kwargs: dict[str, Any] = {"timeout": timeout, "header": header or []}
    if cookie:
        kwargs["cookie"] = cookie
    if origin:
        kwargs["origin"] = origin
    if subprotocols:
        kwargs["subprotocols"] = subprotocols
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}{path}", **kwargs)
    _open_sockets.append(ws)
    return ws


def refused_status(server: UwsgiServer, path: str, **kwargs: Any) -> int:
    """The HTTP status a refused websocket request got."""
    try:
        ws = connect(server, path, **kwargs)
    except websocket.WebSocketBadStatusException as exc:
        return int(exc.status_code)
    ws.close()
    raise AssertionError(f"{path} was accepted")


def receive_all(ws: websocket.WebSocket, count: int) -> list[Any]:
    return [ws.recv() for _ in range(count)]


def assert_silent(ws: websocket.WebSocket, seconds: float = 0.3) -> None:
    """Nothing arrives on ``ws`` within ``seconds`` (used only to assert absence, never to synchronise)."""
    ws.settimeout(seconds)
    try:
        data = ws.recv()
    except websocket.WebSocketTimeoutException:
        return
    finally:
        ws.settimeout(5.0)
    raise AssertionError(f"unexpected message {data!r}")
