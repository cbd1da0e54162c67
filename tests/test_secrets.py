"""Session keys stay server-side: never in a frame sent to a client, never in the server's INFO logs."""

from __future__ import annotations

import json

from django.test import Client

from tests.conftest import People, connect, refused_status
from tests.servers import UwsgiServer
from tests.test_revocation import assert_closed, logged_in_client
from ws4redis.publisher import RedisPublisher


def test_session_keys_never_leave_the_server(server: UwsgiServer, people: People) -> None:
    client, cookie = logged_in_client(people, "alice")
    key = People.session_key(cookie)
    v2 = connect(server, "/ws/secret?subscribe-session&subscribe-user", cookie=cookie, subprotocols=["ws4redis.v2"])
    legacy = connect(server, "/ws/secret?subscribe-session", cookie=cookie)
    RedisPublisher(facility="secret", sessions=[key]).publish_message("for this session")
    frames = [v2.recv(), v2.recv()]  # the welcome, then the message
    envelope = json.loads(frames[-1])
    assert envelope["data"] == "for this session" and envelope["audience"] == "session"
    assert legacy.recv() == "for this session"
    refused_status(server, "/ws/a:b?subscribe-session", cookie=cookie)  # a refusal is logged too
    Client().get("/")  # unrelated traffic
    client.logout()  # revocation names the session in Redis, and is logged
    revoked = v2.recv()
    assert json.loads(revoked)["type"] == "revoked"  # v2 is told why, then closed with 4003
    frames.append(revoked)
    assert_closed(v2)
    assert_closed(legacy)
    assert all(key not in frame for frame in frames)
    log = server.output()
    assert "websocket closed for alice" in log  # the log does say who, by username
    assert key not in log
