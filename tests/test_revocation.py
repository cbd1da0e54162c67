"""Live revocation across processes: the Django side changes something, the uWSGI worker closes the sockets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import websocket
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client

from tests.conftest import People, assert_silent, connect, refused_status
from tests.servers import UwsgiServer
from tests.servers_any import any_server_fixture, gevent_servers_fixture  # noqa: F401  (fixtures)
from ws4redis.exceptions import CloseCode
from ws4redis.publisher import RedisPublisher


def assert_closed(ws: websocket.WebSocket, code: int | None = CloseCode.REVOKED) -> None:
    """The server ends the socket with a close frame carrying ``code`` (on uWSGI too: the transport sends close
    codes); ``code=None``: the connection just ends, with no close frame (a killed worker). Never a timeout."""
    if code is None:
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            ws.recv()
        return
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE, (opcode, data)
    assert int.from_bytes(data[:2], "big") == code, data
    ws.shutdown()  # websocket-client answered the close; its close() would now leave the socket open


def logged_in_client(people: People, name: str) -> tuple[Client, str]:
    client = Client()
    client.force_login(people.users[name])
    return client, f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def test_logout_closes_that_sessions_sockets_only(server: UwsgiServer, people: People) -> None:
    client, cookie = logged_in_client(people, "alice")
    other_tab_session = people.cookie("alice")
    revoked = connect(server, "/ws/r?subscribe-user", cookie=cookie)
    kept = connect(server, "/ws/r?subscribe-user", cookie=other_tab_session)
    client.logout()  # Django's user_logged_out
    assert_closed(revoked)
    RedisPublisher(facility="r", users=["alice"]).publish_message("still logged in elsewhere")
    assert kept.recv() == "still logged in elsewhere"


def test_deleted_session_closes_its_sockets(server: UwsgiServer, people: People) -> None:
    cookie = people.cookie("bob")
    ws = connect(server, "/ws/r?subscribe-broadcast", cookie=cookie)
    Session.objects.get(session_key=People.session_key(cookie)).delete()
    assert_closed(ws)


def test_deactivated_user_loses_every_socket(server: UwsgiServer, people: People) -> None:
    first = connect(server, "/ws/r?subscribe-user", cookie=people.cookie("carol"))
    second = connect(server, "/ws/other?subscribe-broadcast", cookie=people.cookie("carol"))
    bystander = connect(server, "/ws/other?subscribe-broadcast", cookie=people.cookie("bob"))
    carol = people.users["carol"]
    carol.is_active = False
    carol.save()
    assert_closed(first)
    assert_closed(second)
    assert_silent(bystander)
    RedisPublisher(facility="other", broadcast=True).publish_message("bob stays")
    assert bystander.recv() == "bob stays"


def test_logout_reaches_sockets_on_every_worker(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    """The control channel reaches every hub: a logout closes the session's sockets on both workers."""
    from tests.test_faults import peer_ports_by_worker

    server = uwsgi_factory(processes=2)
    client, cookie = logged_in_client(people, "alice")
    sockets: list[websocket.WebSocket] = []
    while len(sockets) < 200:  # until both workers hold some of them (the kernel decides who accepts)
        sockets.append(connect(server, "/ws/r?subscribe-user", cookie=cookie))
        if len(sockets) % 10 == 0 and all(peer_ports_by_worker(server).values()):
            break
    assert all(peer_ports_by_worker(server).values())
    client.logout()
    for ws in sockets:
        assert_closed(ws)


# -- a password change is a logout of every session (issue 19, item 6) -----------------------------------------------
def test_password_change_closes_every_open_socket_of_the_user(any_server: Callable[..., Any], people: People) -> None:
    """``set_password`` + ``save`` anywhere Django runs (a shell, an admin page, a task): Django logs the user's
    sessions out at their next request, and their open sockets close at once."""
    server = any_server()
    first = connect(server, "/ws/pw?subscribe-user", cookie=people.cookie("alice"))
    second = connect(server, "/ws/pw-other?subscribe-broadcast", cookie=people.cookie("alice"))
    bystander = connect(server, "/ws/pw?subscribe-user", cookie=people.cookie("bob"))
    old_cookie = people.cookie("alice")
    alice = people.users["alice"]
    alice.first_name = "Alice"
    alice.save()  # a save that changes no password revokes nothing
    assert_silent(first)
    alice.set_password("a new secret")
    alice.save()
    assert_closed(first)
    assert_closed(second)
    RedisPublisher(facility="pw", users=["bob"]).publish_message("bob stays")
    assert bystander.recv() == "bob stays"
    # The old session no longer authenticates (Django's session auth hash): a user channel is refused.
    assert refused_status(server, "/ws/pw?subscribe-user", cookie=old_cookie) == 403


def test_the_session_that_changed_the_password_keeps_working(any_server: Callable[..., Any], people: People) -> None:
    """``update_session_auth_hash`` in the view that changed the password (Django's PasswordChangeView does it): that
    browser stays logged in under a new session key and its new sockets work; the other session's socket closes."""
    from django.contrib.auth import update_session_auth_hash
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    server = any_server()
    changing, other = people.cookie("alice"), people.cookie("alice")
    other_socket = connect(server, "/ws/pw?subscribe-user", cookie=other)
    request = RequestFactory().post("/password_change/")
    request.session = SessionStore(session_key=People.session_key(changing))
    alice = people.users["alice"]
    request.user = alice
    alice.set_password("changed in a view")
    alice.save()
    update_session_auth_hash(request, alice)  # what the view does before answering
    request.session.save()
    assert_closed(other_socket)
    renewed = f"{settings.SESSION_COOKIE_NAME}={request.session.session_key}"
    ws = connect(server, "/ws/pw?subscribe-user", cookie=renewed)
    RedisPublisher(facility="pw", users=["alice"]).publish_message("still alice")
    assert ws.recv() == "still alice"
