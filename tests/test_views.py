"""Websocket views (``ws4redis.decorators``) end to end, on real Redis and on both transports.

The views live in ``tests/project/ws_views.py`` and are routed by ``tests/project/urls.py`` under ``/ws/``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from tests.conftest import People, connect, refused_status
from tests.servers import RedisServer

_gevent_servers: dict[str, Any] = {}



@pytest.fixture(scope="session")
def gevent_factory(
    redis_server: RedisServer, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[Callable[..., Any]]:
    """The gevent server (``runwebsocket --with-django``), started once per configuration, stopped by pid."""
    from tests.gevent_servers import GeventServer

    def start(overrides: dict[str, Any] | None = None) -> Any:
        key = json.dumps(overrides or {}, sort_keys=True)
        if key not in _gevent_servers:
            _gevent_servers[key] = GeventServer(overrides=overrides)
        return _gevent_servers[key]

    yield start
    while _gevent_servers:
        _gevent_servers.popitem()[1].stop()


@pytest.fixture(params=["uwsgi", "gevent"])
def any_server(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A factory of the test project's server on each transport: ``any_server(overrides)``."""
    if request.param == "uwsgi":
        return request.getfixturevalue("uwsgi_factory")  # type: ignore[no-any-return]
    return request.getfixturevalue("gevent_factory")  # type: ignore[no-any-return]


def recv_json(ws: websocket.WebSocket) -> Any:
    return json.loads(ws.recv())


# -- 1. a view echoing form-validated input -------------------------------------------------------------------------
def test_view_echoes_valid_input_and_explains_invalid_input(any_server: Callable[..., Any], people: People) -> None:
    ws = connect(any_server(), "/ws/echo/", cookie=people.cookie("alice"))
    assert recv_json(ws) == {"hello": "alice"}  # the project's middleware (session, auth) ran before the view
    ws.send(json.dumps({"text": "hip", "times": 2}))
    assert recv_json(ws) == {"ok": True, "echo": "hip hip"}
    ws.send(json.dumps({"text": "x" * 30, "times": 9}))
    answer = recv_json(ws)
    assert answer["ok"] is False
    assert answer["errors"] == {
        "text": ["Ensure this value has at most 20 characters (it has 30)."],
        "times": ["Ensure this value is less than or equal to 3."],
    }
    ws.send("not json")
    assert recv_json(ws) == {"ok": False, "errors": {"__all__": ["send a JSON object"]}}
    ws.send(json.dumps({"text": "still open", "times": 1}))  # an invalid message did not end the conversation
    assert recv_json(ws) == {"ok": True, "echo": "still open"}


def test_view_sees_anonymous_users_as_django_does(any_server: Callable[..., Any], redis_server: RedisServer) -> None:
    ws = connect(any_server(), "/ws/echo/")
    assert recv_json(ws) == {"hello": None}


# -- the same URL over plain HTTP -----------------------------------------------------------------------------------
def test_accept_websocket_view_answers_plain_http(any_server: Callable[..., Any], redis_server: RedisServer) -> None:
    server = any_server()
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/ws/echo/", timeout=5).read()
    assert body == b"echo over plain HTTP: open a websocket to this URL\n"


def test_require_websocket_view_refuses_plain_http_with_400(
    any_server: Callable[..., Any], redis_server: RedisServer
) -> None:
    server = any_server()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/ws/members/", timeout=5)
    assert refused.value.code == 400
    assert refused.value.read() == b"this URL serves websockets only\n"


# -- refusals before the upgrade ------------------------------------------------------------------------------------
def test_view_refuses_with_an_ordinary_response_before_the_upgrade(any_server: Callable[..., Any],
                                                                    people: People) -> None:
    server = any_server()
    assert refused_status(server, "/ws/members/") == 403  # the view's own HttpResponseForbidden
    ws = connect(server, "/ws/members/", cookie=people.cookie("bob"))
    ws.send("hi")
    assert ws.recv() == "hi"


def test_view_keeps_the_origin_check(any_server: Callable[..., Any], people: People) -> None:
    server = any_server()
    assert refused_status(server, "/ws/echo/", cookie=people.cookie("alice"), origin="https://evil.example") == 403
    ws = connect(server, "/ws/echo/", cookie=people.cookie("alice"), origin=f"http://127.0.0.1:{server.port}")
    assert recv_json(ws) == {"hello": "alice"}


def test_view_runs_behind_project_middleware(any_server: Callable[..., Any], redis_server: RedisServer) -> None:
    assert refused_status(any_server(), "/ws/echo/", header=["X-Block-Me: 1"]) == 403


# -- publish and subscribe from a view ------------------------------------------------------------------------------
def test_view_subscribes_and_publishes(any_server: Callable[..., Any], people: People) -> None:
    server = any_server()
    alice = connect(server, "/ws/room/lobby/", cookie=people.cookie("alice"))
    bob = connect(server, "/ws/room/lobby/", cookie=people.cookie("bob"))
    assert recv_json(alice) == {"joined": "lobby"}  # sent after subscribe() returned: Redis confirmed it
    assert recv_json(bob) == {"joined": "lobby"}
    plain = connect(server, "/ws/lobby?subscribe-broadcast")  # a no-code socket on the same facility
    alice.send("hello room")
    assert bob.recv() == "hello room"
    assert alice.recv() == "hello room"
    assert plain.recv() == "hello room"


def test_view_socket_ends_when_the_view_returns(any_server: Callable[..., Any], people: People) -> None:
    ws = connect(any_server(), "/ws/echo/", cookie=people.cookie("carol"))
    assert recv_json(ws) == {"hello": "carol"}
    ws.close()  # the view's loop ends, the runtime closes and releases everything; another socket still works
    again = connect(any_server(), "/ws/echo/", cookie=people.cookie("carol"))
    assert recv_json(again) == {"hello": "carol"}
