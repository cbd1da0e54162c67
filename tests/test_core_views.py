"""A websocket view runs the same session core as the no-code path: its notices and close codes are the same (they
had drifted: a v2 view socket was closed without the ``revoked`` or ``shutdown`` message first)."""

from __future__ import annotations

import json

import websocket

from tests.conftest import People, connect
from tests.servers import UwsgiServer
from tests.test_revocation import assert_closed, logged_in_client
from ws4redis.exceptions import CloseCode


def test_a_v2_view_socket_is_told_it_was_revoked_before_4003(server: UwsgiServer, people: People) -> None:
    client, cookie = logged_in_client(people, "alice")
    ws = connect(server, "/ws/room/lobby/", cookie=cookie, subprotocols=["ws4redis.v2"])
    assert ws.getsubprotocol() == "ws4redis.v2"
    assert json.loads(ws.recv()) == {"joined": "lobby"}
    client.logout()
    assert json.loads(ws.recv()) == {"type": "revoked"}
    assert_closed(ws, CloseCode.REVOKED)


def test_a_legacy_view_socket_gets_the_close_code_alone(server: UwsgiServer, people: People) -> None:
    client, cookie = logged_in_client(people, "bob")
    ws = connect(server, "/ws/room/lobby/", cookie=cookie)
    assert json.loads(ws.recv()) == {"joined": "lobby"}
    client.logout()
    opcode, _data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
