"""Websocket views (``ws4redis.decorators``) under ASGI on a real uvicorn: the views of ``tests/project/ws_views.py``,
sync code in a thread of their own, with the same outcomes as ``tests/test_views.py`` on WSGI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.asgi_servers import AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)
from tests.conftest import People, connect, refused_status
from tests.test_revocation import assert_closed, logged_in_client
from ws4redis.exceptions import CloseCode


@pytest.fixture
def uvicorn(asgi_servers: Callable[..., AsgiServer]) -> AsgiServer:
    return asgi_servers("uvicorn")


def recv_json(ws: Any) -> Any:
    return json.loads(ws.recv())


def test_view_echoes_behind_the_project_middleware(uvicorn: AsgiServer, people: People) -> None:
    ws = connect(uvicorn, "/ws/echo/", cookie=people.cookie("alice"))  # type: ignore[arg-type]
    assert recv_json(ws) == {"hello": "alice"}  # session and auth middleware ran before the view
    ws.send(json.dumps({"text": "hip", "times": 2}))
    assert recv_json(ws) == {"ok": True, "echo": "hip hip"}
    ws.send("not json")
    assert recv_json(ws) == {"ok": False, "errors": {"__all__": ["send a JSON object"]}}
    ws.close()  # the view's loop ends; another socket still works
    again = connect(uvicorn, "/ws/echo/")  # type: ignore[arg-type]
    assert recv_json(again) == {"hello": None}


def test_plain_http_to_a_view_is_django_s(uvicorn: AsgiServer) -> None:
    body = urllib.request.urlopen(f"http://127.0.0.1:{uvicorn.port}/ws/echo/", timeout=5).read()
    assert body == b"echo over plain HTTP: open a websocket to this URL\n"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{uvicorn.port}/ws/members/", timeout=5)
    assert (refused.value.code, refused.value.read()) == (400, b"this URL serves websockets only\n")


def test_view_refusals_before_the_upgrade(uvicorn: AsgiServer, people: People) -> None:
    assert refused_status(uvicorn, "/ws/members/") == 403  # type: ignore[arg-type]  # the view's own response
    assert refused_status(uvicorn, "/ws/echo/", origin="https://evil.example") == 403  # type: ignore[arg-type]
    assert refused_status(uvicorn, "/ws/echo/", header=["X-Block-Me: 1"]) == 403  # type: ignore[arg-type]
    ws = connect(uvicorn, "/ws/members/", cookie=people.cookie("bob"))  # type: ignore[arg-type]
    ws.send("hi")
    assert ws.recv() == "hi"


def test_view_subscribes_and_publishes_with_no_code_sockets(uvicorn: AsgiServer, people: People) -> None:
    alice = connect(uvicorn, "/ws/room/lobby/", cookie=people.cookie("alice"))  # type: ignore[arg-type]
    bob = connect(uvicorn, "/ws/room/lobby/", cookie=people.cookie("bob"))  # type: ignore[arg-type]
    assert recv_json(alice) == {"joined": "lobby"}  # sent after subscribe() returned: Redis confirmed it
    assert recv_json(bob) == {"joined": "lobby"}
    plain = connect(uvicorn, "/ws/lobby?subscribe-broadcast")  # type: ignore[arg-type]
    alice.send("hello room")
    assert bob.recv() == "hello room"
    assert alice.recv() == "hello room"
    assert plain.recv() == "hello room"


def test_logout_closes_a_view_socket(uvicorn: AsgiServer, people: People) -> None:
    client, cookie = logged_in_client(people, "alice")
    ws = connect(uvicorn, "/ws/members/", cookie=cookie)  # type: ignore[arg-type]
    ws.send("hi")
    assert ws.recv() == "hi"
    client.logout()
    assert_closed(ws, CloseCode.REVOKED)
