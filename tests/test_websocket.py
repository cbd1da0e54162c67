"""End to end: real uWSGI, real Redis, real websocket clients with real session cookies."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.request
from collections.abc import Callable

import pytest
import websocket

from tests.conftest import People, assert_silent, connect, receive_all, refused_status
from tests.servers import RedisServer, UwsgiServer, tcp_connections
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import RedisMessage


def publish(facility: str, message: str | bytes, **audience: object) -> int:
    return RedisPublisher(facility=facility, **audience).publish_message(RedisMessage(message))


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition on another process's state until it holds (there is no event to await across processes)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


# -- audiences ------------------------------------------------------------------------------------------------------
def test_broadcast_reaches_everyone_including_anonymous(server: UwsgiServer, people: People) -> None:
    alice = connect(server, "/ws/news?subscribe-broadcast", cookie=people.cookie("alice"))
    anonymous = connect(server, "/ws/news?subscribe-broadcast")
    assert publish("news", "extra!", broadcast=True) == 1  # one process (the worker's hub) received it
    assert alice.recv() == "extra!"
    assert anonymous.recv() == "extra!"


def test_user_messages_reach_only_that_user(server: UwsgiServer, people: People) -> None:
    alice = connect(server, "/ws/inbox?subscribe-user", cookie=people.cookie("alice"))
    alice_other_tab = connect(server, "/ws/inbox?subscribe-user", cookie=people.cookie("alice"))
    bob = connect(server, "/ws/inbox?subscribe-user", cookie=people.cookie("bob"))
    publish("inbox", "for alice", users=["alice"])
    publish("inbox", "for bob", users=[people.users["bob"]])
    assert alice.recv() == "for alice"
    assert alice_other_tab.recv() == "for alice"
    assert bob.recv() == "for bob"
    assert_silent(alice)
    assert_silent(bob)


def test_group_messages_use_groups_cached_at_login(server: UwsgiServer, people: People) -> None:
    alice = connect(server, "/ws/team?subscribe-group", cookie=people.cookie("alice"))  # red
    carol = connect(server, "/ws/team?subscribe-group", cookie=people.cookie("carol"))  # red
    bob = connect(server, "/ws/team?subscribe-group", cookie=people.cookie("bob"))  # blue
    publish("team", "red only", groups=["red"])
    assert alice.recv() == "red only"
    assert carol.recv() == "red only"
    publish("team", "blue only", groups=["blue"])
    assert bob.recv() == "blue only"
    assert_silent(alice)


def test_session_messages_reach_only_that_session(server: UwsgiServer, people: People) -> None:
    first, second = people.cookie("alice"), people.cookie("alice")
    ws_first = connect(server, "/ws/s?subscribe-session", cookie=first)
    ws_second = connect(server, "/ws/s?subscribe-session", cookie=second)
    publish("s", "first session", sessions=[People.session_key(first)])
    assert ws_first.recv() == "first session"
    assert_silent(ws_second)


def test_a_view_publishes_to_its_caller_with_self(server: UwsgiServer, people: People) -> None:
    cookie = people.cookie("alice")
    alice = connect(server, "/ws/views?subscribe-user&subscribe-session", cookie=cookie)
    bob = connect(server, "/ws/views?subscribe-user", cookie=people.cookie("bob"))
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/publish/", headers={"Cookie": cookie})
    assert urllib.request.urlopen(request, timeout=5).read() == b"published"
    assert receive_all(alice, 2) == ["from a view", "from a view"]  # user channel and session channel
    assert_silent(bob)


def test_django_pages_are_served_on_the_same_port(server: UwsgiServer) -> None:
    assert urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5).read() == b"django page"


def test_token_auth_hook_replaces_sessions(
    uwsgi_factory: Callable[..., UwsgiServer], redis_server: RedisServer
) -> None:
    server = uwsgi_factory({"WS4REDIS_PROCESS_REQUEST": "tests.project.hooks.token_auth"})
    zed = connect(server, "/ws/t?subscribe-user&token=zed")
    publish("t", "hi zed", users=["zed"])
    assert zed.recv() == "hi zed"


def test_a_process_publishing_the_original_way_reaches_clients(server: UwsgiServer, people: People,
                                                                redis_server: RedisServer) -> None:
    """django-websocket-redis 0.6 publishes with a plain PUBLISH on the same channel names."""
    alice = connect(server, "/ws/legacy?subscribe-user&subscribe-broadcast", cookie=people.cookie("alice"))
    raw = redis_server.client()
    raw.publish("test:user:alice:legacy", "raw user")
    raw.publish("test:broadcast:legacy", b"\xff\xfe binary")
    raw.close()
    assert alice.recv() == "raw user"
    opcode, data = alice.recv_data()
    assert (opcode, data) == (websocket.ABNF.OPCODE_BINARY, b"\xff\xfe binary")


# -- kept messages and heartbeats -----------------------------------------------------------------------------------
def test_kept_message_is_sent_to_new_subscribers(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory({"WS4REDIS_EXPIRE": 60})
    RedisPublisher(facility="kept", broadcast=True).publish_message("last news", expire=60)
    RedisPublisher(facility="kept", users=["alice"]).publish_message("for alice", expire=60)
    alice = connect(server, "/ws/kept?subscribe-broadcast&subscribe-user", cookie=people.cookie("alice"))
    assert sorted(receive_all(alice, 2)) == ["for alice", "last news"]
    bob = connect(server, "/ws/kept?subscribe-broadcast&subscribe-user", cookie=people.cookie("bob"))
    assert bob.recv() == "last news"
    assert_silent(bob)


def test_expire_zero_sends_nothing_kept(server: UwsgiServer, people: People) -> None:
    RedisPublisher(facility="nokeep", broadcast=True).publish_message("gone")  # WS4REDIS_EXPIRE is 0 here
    ws = connect(server, "/ws/nokeep?subscribe-broadcast")
    assert_silent(ws)


def test_heartbeat_is_answered_and_never_published(server: UwsgiServer, people: People) -> None:
    alice = connect(server, "/ws/hb?subscribe-broadcast&publish-broadcast", cookie=people.cookie("alice"))
    bob = connect(server, "/ws/hb?subscribe-broadcast", cookie=people.cookie("bob"))
    alice.send("--heartbeat--")
    assert alice.recv() == "--heartbeat--"
    alice.send("real message")
    assert bob.recv() == "real message"  # the heartbeat before it was not forwarded


# -- echo -----------------------------------------------------------------------------------------------------------
def test_echo_is_suppressed_by_origin_not_by_content(server: UwsgiServer, people: People) -> None:
    path = "/ws/room?subscribe-broadcast&publish-broadcast"
    alice = connect(server, path, cookie=people.cookie("alice"))
    bob = connect(server, path, cookie=people.cookie("bob"))
    alice.send("same words")
    assert bob.recv() == "same words"
    bob.send("same words")  # identical content from another client must still reach alice
    assert alice.recv() == "same words"
    assert_silent(alice)
    assert_silent(bob)


def test_echo_flag_returns_own_messages(server: UwsgiServer, people: People) -> None:
    alice = connect(server, "/ws/room2?subscribe-broadcast&publish-broadcast&echo", cookie=people.cookie("alice"))
    alice.send("mine")
    assert alice.recv() == "mine"


# -- refusals before the upgrade ------------------------------------------------------------------------------------
def raw_get(server: UwsgiServer, path: str, headers: dict[str, str]) -> int:
    """Status of a GET with exactly these headers (urllib would force its own Connection header)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_plain_http_request_to_the_websocket_url_is_400(server: UwsgiServer) -> None:
    assert raw_get(server, "/ws/foo?subscribe-broadcast", {}) == 400


def test_unsupported_version_is_426(server: UwsgiServer) -> None:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "8",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    assert raw_get(server, "/ws/foo?subscribe-broadcast", headers) == 426


def test_missing_key_is_400(server: UwsgiServer) -> None:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    assert raw_get(server, "/ws/foo?subscribe-broadcast", headers) == 400


def test_foreign_origin_is_403(server: UwsgiServer, people: People) -> None:
    cookie = people.cookie("alice")
    assert refused_status(server, "/ws/f?subscribe-user", cookie=cookie, origin="http://evil.example") == 403
    assert refused_status(server, "/ws/f?subscribe-user", cookie=cookie, origin="null") == 403
    # In ALLOWED_HOSTS, same scheme and port as the server (tests/test_origin.py: any other scheme or port is 403).
    connect(server, "/ws/f?subscribe-user", cookie=cookie, origin=f"http://localhost:{server.port}")


def test_allowed_origins_setting(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory({"WS4REDIS_ALLOWED_ORIGINS": ["https://app.example"]})
    connect(server, "/ws/f?subscribe-broadcast", origin="https://app.example")
    assert refused_status(server, "/ws/f?subscribe-broadcast", origin="http://localhost:1234") == 403


def test_anonymous_may_only_subscribe_to_broadcast(server: UwsgiServer) -> None:
    for flags in ("subscribe-user", "subscribe-group", "subscribe-session", "publish-broadcast"):
        assert refused_status(server, f"/ws/f?{flags}") == 403, flags


def test_permissive_policy_restores_anonymous_publishing(uwsgi_factory: Callable[..., UwsgiServer],
                                                         redis_server: RedisServer) -> None:
    server = uwsgi_factory({"WS4REDIS_POLICY": "permissive"})
    listener = connect(server, "/ws/open?subscribe-broadcast")
    talker = connect(server, "/ws/open?publish-broadcast")
    talker.send("anyone may talk")
    assert listener.recv() == "anyone may talk"
    assert refused_status(server, "/ws/open?subscribe-user") == 403  # never a shared channel, even here


@pytest.mark.parametrize("facility", ["a:b", "x*", "%20space", "a" * 101])
def test_invalid_facility_is_404(server: UwsgiServer, facility: str) -> None:
    assert refused_status(server, f"/ws/{facility}?subscribe-broadcast") == 404


def test_allowed_channels_hook(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory({"WS4REDIS_ALLOWED_CHANNELS": "tests.project.hooks.only_broadcast"})
    cookie = people.cookie("alice")
    assert refused_status(server, "/ws/f?subscribe-broadcast&publish-broadcast", cookie=cookie) == 403
    alice = connect(server, "/ws/f?subscribe-broadcast&subscribe-user", cookie=cookie)  # user flag filtered out
    publish("f", "to alice", users=["alice"])
    publish("f", "to all", broadcast=True)
    assert alice.recv() == "to all"


def test_project_middleware_runs_before_the_upgrade(server: UwsgiServer, people: People) -> None:
    status = refused_status(server, "/ws/f?subscribe-user", cookie=people.cookie("alice"), header=["X-Block-Me: 1"])
    assert status == 403


def test_refusals_do_not_disturb_open_connections(server: UwsgiServer, people: People) -> None:
    alice = connect(server, "/ws/calm?subscribe-broadcast", cookie=people.cookie("alice"))
    for path in ("/ws/a:b?subscribe-broadcast", "/ws/calm?subscribe-user"):
        refused_status(server, path)
    publish("calm", "still here", broadcast=True)
    assert alice.recv() == "still here"


# -- resources ------------------------------------------------------------------------------------------------------
def redis_clients_of(redis_server: RedisServer, pids: list[int]) -> list[dict[str, object]]:
    """Redis clients opened by the given worker processes (matched by the local port's owner)."""
    ports = {local for pid in pids for local, remote in tcp_connections(pid) if remote == redis_server.port}
    client = redis_server.client()
    try:
        return [c for c in client.client_list() if int(str(c["addr"]).rsplit(":", 1)[1]) in ports]
    finally:
        client.close()


def test_one_redis_pubsub_connection_for_200_sockets(server: UwsgiServer, people: People,
                                                     redis_server: RedisServer) -> None:
    cookies = [people.cookie(name) for name in ("alice", "bob", "carol")]
    sockets = [
        connect(server, "/ws/many?subscribe-broadcast&subscribe-user&subscribe-session", cookie=cookies[i % 3])
        for i in range(200)
    ]
    clients = redis_clients_of(redis_server, server.workers())
    subscribers = [c for c in clients if int(str(c["sub"])) > 0]
    assert len(subscribers) == 1, subscribers
    assert str(subscribers[0]["name"]).startswith("ws4redis-hub:")
    # 1 control + 1 broadcast + 3 users + 3 sessions channels, however many sockets.
    assert int(str(subscribers[0]["sub"])) == 8
    # Besides the pub/sub link, only the publishing pool (idle sockets use none of it).
    assert len(clients) <= 1 + server_pool_size()
    publish("many", "to all 200", broadcast=True)
    assert all(ws.recv() == "to all 200" for ws in sockets)


def server_pool_size() -> int:
    from ws4redis import settings

    return int(settings.get("WS4REDIS_POOL_SIZE"))


def test_more_than_1024_sockets_on_one_worker(server: UwsgiServer) -> None:
    """The original's select() raised for any fd >= 1024 and dropped sockets past ~500 per worker."""
    sockets = [connect(server, "/ws/wide?subscribe-broadcast") for _ in range(1100)]
    publish("wide", "to 1100", broadcast=True)
    assert sum(ws.recv() == "to 1100" for ws in sockets) == 1100


def test_last_socket_leaving_unsubscribes_the_channel(server: UwsgiServer, people: People,
                                                      redis_server: RedisServer) -> None:
    client = redis_server.client()
    channel = "test:user:bob:leave"
    bob = connect(server, "/ws/leave?subscribe-user", cookie=people.cookie("bob"))
    assert client.pubsub_numsub(channel) == [(channel.encode(), 1)]
    bob.close()
    wait_until(lambda: client.pubsub_numsub(channel) == [(channel.encode(), 0)])
    client.close()


def test_client_dying_mid_stream_frees_its_channels(server: UwsgiServer, people: People,
                                                    redis_server: RedisServer) -> None:
    alice = connect(server, "/ws/stream?subscribe-broadcast&subscribe-user", cookie=people.cookie("alice"))
    bob = connect(server, "/ws/stream?subscribe-broadcast", cookie=people.cookie("bob"))
    for i in range(50):
        publish("stream", f"m{i}", broadcast=True)
    # Alice's TCP connection is reset without a close frame while messages are in flight.
    alice.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    alice.sock.close()
    for i in range(50, 100):
        publish("stream", f"m{i}", broadcast=True)
    assert receive_all(bob, 100) == [f"m{i}" for i in range(100)]
    client = redis_server.client()
    wait_until(lambda: client.pubsub_numsub("test:user:alice:stream")[0][1] == 0)
    client.close()


def test_burst_of_1000_messages_to_100_sockets(server: UwsgiServer) -> None:
    sockets = [connect(server, "/ws/burst?subscribe-broadcast") for _ in range(100)]
    publisher = RedisPublisher(facility="burst", broadcast=True)
    for i in range(1000):
        publisher.publish_message(f"{i}")
    expected = [f"{i}" for i in range(1000)]
    for ws in sockets:
        assert receive_all(ws, 1000) == expected


def test_hub_resubscribes_after_losing_its_redis_link(server: UwsgiServer, people: People,
                                                      redis_server: RedisServer) -> None:
    alice = connect(server, "/ws/resub?subscribe-user", cookie=people.cookie("alice"))
    client = redis_server.client()
    (hub_link,) = [c for c in redis_clients_of(redis_server, server.workers()) if int(str(c["sub"])) > 0]
    assert client.client_kill_filter(_id=str(hub_link["id"])) == 1
    # Once the hub is back, the channel is subscribed again and new messages arrive.
    wait_until(lambda: client.pubsub_numsub("test:user:alice:resub")[0][1] == 1)
    client.close()
    publish("resub", "after reconnect", users=["alice"])
    assert alice.recv() == "after reconnect"


def test_open_websockets_are_not_bounded_by_gevent_cores(uwsgi_factory: Callable[..., UwsgiServer]) -> None:
    """An open websocket gives its uWSGI request back: 60 sockets on a worker with 8 gevent cores, all served."""
    server = uwsgi_factory(gevent=8)
    sockets = [connect(server, "/ws/cores?subscribe-broadcast") for _ in range(60)]
    RedisPublisher(facility="cores", broadcast=True).publish_message("to all 60")
    assert [ws.recv() for ws in sockets] == ["to all 60"] * 60
    assert raw_get(server, "/ws/cores", {}) == 400  # an ordinary request still finds a free core


def _dribble(ws: websocket.WebSocket, frame: bytes) -> None:
    """One byte per write (no Nagle delay): the server may read a frame in many pieces, a header without payload."""
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(frame)):
        ws.sock.sendall(frame[i:i + 1])


def _await_pong(ws: websocket.WebSocket, payload: bytes) -> None:
    """Ping and wait for the answer: the server has then read and parsed everything sent before the ping."""
    ws.ping(payload)
    opcode, frame = ws.recv_data_frame(True)
    assert (opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, payload)


def test_messages_split_across_reads_and_fragments_arrive_whole(
    uwsgi_factory: Callable[..., UwsgiServer], people: People
) -> None:
    """The server lets go of its frame parser whenever it holds nothing, and must never while it holds a part:
    fragments with pings between them, frames dribbled a byte at a time, a fragment boundary inside a UTF-8
    character."""
    server = uwsgi_factory()
    receiver = connect(server, "/ws/dribble?subscribe-broadcast")
    sender = connect(server, "/ws/dribble?publish-broadcast", cookie=people.cookie("alice"))
    text = "héllo wörld, " * 40
    data = text.encode()
    cut1, cut2 = 2, 92  # each between the two bytes of an "é" or an "ö"
    assert data[cut1 - 1] >= 0xC0 and data[cut2 - 1] >= 0xC0
    frame = websocket.ABNF
    first = frame(0, 0, 0, 0, frame.OPCODE_TEXT, 1, data[:cut1]).format()
    middle = frame(0, 0, 0, 0, frame.OPCODE_CONT, 1, data[cut1:cut2]).format()
    last = frame(1, 0, 0, 0, frame.OPCODE_CONT, 1, data[cut2:]).format()
    sender.sock.sendall(first)
    _await_pong(sender, b"after the first fragment")  # a message is under way: the parser must be kept
    _dribble(sender, middle)
    _await_pong(sender, b"after the middle one")
    _dribble(sender, last)
    assert receiver.recv() == text
    _dribble(sender, frame(1, 0, 0, 0, frame.OPCODE_TEXT, 1, b"second, whole").format())
    assert receiver.recv() == "second, whole"


def test_a_message_sent_right_after_the_upgrade_is_never_lost(uwsgi_factory: Callable[..., UwsgiServer]) -> None:
    """The client speaks as soon as it has the 101: the server's HTTP side, which answered the upgrade, must not read
    (and so swallow) that first frame while it lets go of the request. A thousand times: the loss was a race that a
    few hundred pairs showed about one run in three."""
    server = uwsgi_factory({"WS4REDIS_POLICY": "permissive"})
    for i in range(1000):
        listener = connect(server, "/ws/first?subscribe-broadcast")
        talker = connect(server, "/ws/first?publish-broadcast")
        talker.send(f"first {i}")
        assert listener.recv() == f"first {i}"
        listener.close()
        talker.close()


def test_the_tcp_connection_ends_with_the_closing_handshake(uwsgi_factory: Callable[..., UwsgiServer]) -> None:
    """Once the client's close is answered, the server closes the TCP connection at once, even when nothing else is
    going on in its worker (its event loop then sleeps for seconds; a close deferred to its next wake-up, as gevent's
    patched ``os.close`` does, would leave the client waiting for the end of the stream)."""
    server = uwsgi_factory({"WS4REDIS_WAKE_INTERVAL": 30})  # a server of its own: no other socket's timer wakes it
    connect(server, "/ws/bye?subscribe-broadcast")  # keeps the channel: no UNSUBSCRIBE reply wakes the worker
    ws = connect(server, "/ws/bye?subscribe-broadcast")
    close = websocket.ABNF(1, 0, 0, 0, websocket.ABNF.OPCODE_CLOSE, 1, b"\x03\xe8").format()
    ws.sock.sendall(close)  # by hand: websocket-client would answer the echo with one more frame, waking the server
    ws.sock.settimeout(2)
    received = b""
    while chunk := ws.sock.recv(4096):  # times out unless the server ends the stream
        received += chunk
    assert received[:1] == b"\x88"  # its close echo came first
    ws.shutdown()
