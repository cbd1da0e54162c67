"""The ASGI application before the upgrade, on real servers: refusals keep their HTTP statuses (the denial response),
or degrade to 403 where the server has none (daphne); plain HTTP under WEBSOCKET_URL is 400; Django serves its pages
through ``get_asgi_application()``; a broken setting stops the server at the lifespan's startup."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.asgi_servers import AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)
from ws4redis.asgi.handshake import environ_of
from ws4redis.auth import check_upgrade, choose_subprotocol

REFUSALS = [
    # path, client options, status, what the body says
    ("/ws/r?subscribe-user", {}, 403, "subscribe-user needs a logged-in user"),
    ("/ws/r?subscribe-broadcast", {"origin": "http://evil.example"}, 403, "origin 'http://evil.example' is not"),
    ("/ws/" + "x" * 300 + "?subscribe-broadcast", {}, 404, "invalid facility name"),
    ("/elsewhere", {}, 404, "no websocket here"),
    ("/ws/r?subscribe-broadcast", {"header": ["X-Block-Me: yes"]}, 403, "refused by middleware with 403"),
]


def http_get(server: AsgiServer, path: str, *, data: bytes | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", data=data, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def refusal(server: AsgiServer, path: str, **options: Any) -> tuple[int, str]:
    import websocket

    try:
        websocket.create_connection(f"ws://127.0.0.1:{server.port}{path}", timeout=5, **options).close()
    except websocket.WebSocketBadStatusException as exc:
        body = exc.resp_body.decode() if isinstance(exc.resp_body, bytes) else ""
        return int(exc.status_code), body
    raise AssertionError(f"{path} was accepted")


@pytest.fixture(scope="module")
def uvicorn(asgi_servers: Callable[..., AsgiServer]) -> AsgiServer:
    return asgi_servers("uvicorn")


@pytest.mark.parametrize(("path", "options", "status", "says"), REFUSALS)
def test_refusals_keep_their_status_and_reason_on_uvicorn(
    uvicorn: AsgiServer, path: str, options: dict[str, Any], status: int, says: str
) -> None:
    got, body = refusal(uvicorn, path, **options)
    assert (got, says in body) == (status, True), (got, body)


@pytest.mark.parametrize("name", ["hypercorn", "granian"])
def test_other_servers_with_the_denial_response_keep_the_status(
    asgi_servers: Callable[..., AsgiServer], name: str
) -> None:
    server = asgi_servers(name)
    assert refusal(server, "/ws/" + "x" * 300 + "?subscribe-broadcast")[0] == 404
    assert refusal(server, "/ws/r?subscribe-user")[0] == 403


def test_daphne_has_no_denial_response_so_every_refusal_is_403(asgi_servers: Callable[..., AsgiServer]) -> None:
    server = asgi_servers("daphne")
    assert refusal(server, "/ws/" + "x" * 300 + "?subscribe-broadcast")[0] == 403
    assert refusal(server, "/ws/r?subscribe-user")[0] == 403


def test_plain_http_under_the_websocket_url_is_400_as_on_wsgi(uvicorn: AsgiServer) -> None:
    status, body = http_get(uvicorn, "/ws/r?subscribe-broadcast")
    assert (status, body) == (400, "not a websocket upgrade request: the client must upgrade to a websocket\n")
    status, body = http_get(uvicorn, "/ws/r", data=b"x=1")
    assert (status, body) == (400, "a websocket handshake must be a GET: the client must upgrade to a websocket\n")


def test_django_serves_every_other_request(uvicorn: AsgiServer) -> None:
    assert http_get(uvicorn, "/") == (200, "django page")
    assert http_get(uvicorn, "/no-such-page/")[0] == 404  # Django's own 404


def test_the_websocket_only_application_answers_404_outside_the_websocket_url(
    asgi_servers: Callable[..., AsgiServer],
) -> None:
    server = asgi_servers("uvicorn", app="ws4redis.asgi:application")
    assert http_get(server, "/") == (404, "websockets only: see WEBSOCKET_URL\n")
    assert http_get(server, "/ws/r")[0] == 400
    assert refusal(server, "/ws/r?subscribe-user")[0] == 403


@pytest.mark.parametrize("app", ["ws4redis.asgi:application", "tests.project.asgi:application"])
def test_a_broken_setting_stops_the_server_at_startup(redis_server: Any, app: str) -> None:
    server = AsgiServer("uvicorn", app=app, overrides={"WS4REDIS_POLICY": "lenient"}, wait=False)
    try:
        assert server.proc.wait(timeout=30) != 0
    finally:
        server.stop()
    assert "WS4REDIS_POLICY = 'lenient'" in server.output()


def test_the_scope_becomes_the_environ_a_wsgi_server_would_give() -> None:
    scope = {
        "type": "websocket", "path": "/ws/caf\u00e9", "query_string": b"subscribe-broadcast", "root_path": "",
        "headers": [(b"host", b"example.com"), (b"cookie", b"a=1"), (b"cookie", b"b=2"),
                    (b"sec-websocket-protocol", b"ws4redis.v2, chat")],
        "scheme": "wss", "server": ("10.0.0.1", 443), "client": ("10.0.0.2", 5000), "http_version": "2",
    }
    environ = environ_of(scope)
    assert environ["PATH_INFO"] == "/ws/caf\u00c3\u00a9"  # UTF-8 bytes read as latin-1 (PEP 3333)
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["wsgi.url_scheme"] == "https"
    check_upgrade(environ)  # an HTTP/2 websocket has no Upgrade headers: the server did the upgrade
    assert choose_subprotocol(environ) == "ws4redis.v2"


def test_the_server_stops_cleanly_with_sockets_open(redis_server: Any, django_db_setup: Any) -> None:
    """SIGTERM: uvicorn closes the open sockets, the lifespan's shutdown closes the hub; no traceback. (uvicorn
    re-raises the signal once it has shut down, so its exit status is -SIGTERM, as for any graceful stop.)"""
    import websocket

    server = AsgiServer("uvicorn")
    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws/bye?subscribe-broadcast", timeout=5)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=15) in (0, -signal.SIGTERM)
        ws.close()
    finally:
        server.stop()
    assert "Application shutdown complete" in server.output()
    assert "Finished server process" in server.output()
    assert "Traceback" not in server.output(), server.output()
