"""ws4redis over ASGI, end to end: real ASGI servers, real Redis, real websocket clients, Django's own logout.

Every server runs the smaller suite (every audience, history recovery, revocation, drain; refusals are in
``test_asgi_handshake``); uvicorn, the default ASGI server, also runs client publishing on both wire protocols,
run-time subscriptions, kept messages, limits and the connect/message/disconnect hooks' effects.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from django.core.management import call_command
from django.test import override_settings

from tests.asgi_servers import ASGI_SERVERS, AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)
from tests.conftest import People, assert_silent, connect, refused_status
from tests.servers import ROOT
from tests.test_deployment import NGINX, Nginx, get
from tests.test_history import HISTORY, V2Client
from tests.test_presence import PRESENCE, labels
from tests.test_revocation import assert_closed, logged_in_client
from tests.test_websocket import wait_until
from ws4redis.exceptions import CloseCode
from ws4redis.publisher import RedisPublisher

OVERRIDES: dict[str, Any] = {
    "WS4REDIS_HISTORY": HISTORY, "WS4REDIS_EXPIRE": 60, "WS4REDIS_MAX_MESSAGE_SIZE": 1024,
    "WS4REDIS_PRESENCE": PRESENCE,
}


@pytest.fixture(params=ASGI_SERVERS)
def server(request: pytest.FixtureRequest, asgi_servers: Callable[..., AsgiServer]) -> AsgiServer:
    """Each ASGI server of the test project (started once for the session)."""
    return asgi_servers(request.param, OVERRIDES)


@pytest.fixture
def uvicorn(asgi_servers: Callable[..., AsgiServer]) -> AsgiServer:
    return asgi_servers("uvicorn", OVERRIDES)


@pytest.fixture(autouse=True)
def _same_settings() -> Iterator[None]:
    """The test process publishes with the servers' settings (history, kept messages)."""
    with override_settings(WS4REDIS_HISTORY=HISTORY, WS4REDIS_EXPIRE=60, WS4REDIS_PRESENCE=PRESENCE):
        yield


def v2(server: AsgiServer, path: str, **kwargs: Any) -> websocket.WebSocket:
    ws = connect(server, path, subprotocols=["ws4redis.v2"], **kwargs)  # type: ignore[arg-type]
    welcome = json.loads(ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


def recv(ws: websocket.WebSocket) -> Any:
    return json.loads(ws.recv())


# -- the smaller suite, on every server -------------------------------------------------------------------------------
def test_every_audience_reaches_its_sockets_only(server: AsgiServer, people: People) -> None:
    alice = people.cookie("alice")
    broadcast = connect(server, "/ws/aud?subscribe-broadcast")  # type: ignore[arg-type]
    user = connect(server, "/ws/aud?subscribe-user", cookie=alice)  # type: ignore[arg-type]
    group = connect(server, "/ws/aud?subscribe-group", cookie=people.cookie("carol"))  # type: ignore[arg-type]
    session = connect(server, "/ws/aud?subscribe-session", cookie=alice)  # type: ignore[arg-type]
    bob = connect(  # type: ignore[arg-type]
        server, "/ws/aud?subscribe-user&subscribe-group&subscribe-session", cookie=people.cookie("bob")
    )
    RedisPublisher(facility="aud", broadcast=True).publish_message("to all")
    RedisPublisher(facility="aud", users=["alice"]).publish_message("to alice")
    RedisPublisher(facility="aud", groups=["red"]).publish_message("to red")
    RedisPublisher(facility="aud", sessions=[People.session_key(alice)]).publish_message("to that tab")
    assert broadcast.recv() == "to all"
    assert user.recv() == "to alice"
    assert group.recv() == "to red"
    assert session.recv() == "to that tab"
    assert_silent(bob)
    assert_silent(user)


def test_history_recovers_what_a_v2_client_missed(server: AsgiServer) -> None:
    client = V2Client(server, "/ws/numbers?subscribe-broadcast")  # type: ignore[arg-type]
    client.connect()
    assert client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))["type"] == "recovered"
    publisher = RedisPublisher(facility="numbers", broadcast=True)
    for i in range(5):
        publisher.publish_message(str(i))
    while len(client.messages) < 5:
        client.receive()
    client.close()
    for i in range(5, 10):
        publisher.publish_message(str(i))  # while the client is away
    client.connect()
    answer = client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))
    assert (answer["type"], answer["replayed"]) == ("recovered", 5), answer
    while len(client.messages) < 11:
        client.receive()
    publisher.publish_message("live")
    client.receive_until(lambda f: f["type"] == "message")
    kept = [m["data"] for m in client.messages if m["id"] is None]
    assert kept == ["9"]  # WS4REDIS_EXPIRE: the kept last message at connect, as on WSGI
    streamed = [m["data"] for m in client.messages if m["id"] is not None]
    assert streamed == [str(i) for i in range(10)] + ["live"]  # in order, none twice


def test_logout_closes_that_sessions_sockets_only(server: AsgiServer, people: People) -> None:
    client, cookie = logged_in_client(people, "alice")
    legacy = connect(server, "/ws/r?subscribe-user", cookie=cookie)  # type: ignore[arg-type]
    told = v2(server, "/ws/r?subscribe-user", cookie=cookie)
    kept = connect(server, "/ws/r?subscribe-user", cookie=people.cookie("alice"))  # type: ignore[arg-type]
    client.logout()  # Django's own logout: user_logged_out, through Redis, to the server
    assert recv(told) == {"type": "revoked"}
    assert_closed(told, CloseCode.REVOKED)
    assert_closed(legacy, CloseCode.REVOKED)
    RedisPublisher(facility="r", users=["alice"]).publish_message("still logged in elsewhere")
    assert kept.recv() == "still logged in elsewhere"


def test_drain_closes_with_1001_and_a_reconnect_delay(server: AsgiServer) -> None:
    told = v2(server, "/ws/drain?subscribe-broadcast")
    legacy = connect(server, "/ws/drain?subscribe-broadcast")  # type: ignore[arg-type]
    call_command("ws4redis_drain", window=2, stdout=io.StringIO())
    notice = recv(told)
    assert notice["type"] == "shutdown" and 500 <= notice["reconnect_in"] <= 2000, notice
    # daphne (autobahn) lets an application close only with 1000 or 3000-4999 (docs/servers.md)
    code = CloseCode.NORMAL if server.name == "daphne" else CloseCode.GOING_AWAY
    assert_closed(told, code)
    assert_closed(legacy, code)
    again = connect(server, "/ws/drain?subscribe-broadcast")  # type: ignore[arg-type]
    RedisPublisher(facility="drain", broadcast=True).publish_message("after the drain")
    assert again.recv() == "after the drain"


# -- uvicorn: the rest of what a client relies on ---------------------------------------------------------------------
def test_clients_publish_to_each_other_on_both_protocols(uvicorn: AsgiServer, people: People) -> None:
    cookie = people.cookie("alice")
    listener = v2(uvicorn, "/ws/chat?subscribe-broadcast")
    legacy = connect(uvicorn, "/ws/chat?subscribe-broadcast&publish-broadcast", cookie=cookie)  # type: ignore[arg-type]
    legacy.send("from legacy")
    message = recv(listener)
    assert (message["type"], message["data"], message["channel"]) == ("message", "from legacy", "chat")
    assert_silent(legacy)  # no echo of its own publish
    sender = v2(uvicorn, "/ws/chat?publish-broadcast", cookie=people.cookie("bob"))
    sender.send(json.dumps({"type": "publish", "data": "from v2"}))
    assert recv(listener)["data"] == "from v2"


def test_kept_message_and_run_time_subscription(uvicorn: AsgiServer, people: People) -> None:
    RedisPublisher(facility="kept", broadcast=True).publish_message("the last one")
    ws = v2(uvicorn, "/ws/other?subscribe-broadcast", cookie=people.cookie("alice"))
    ws.send(json.dumps({"type": "subscribe", "facility": "kept", "audiences": ["broadcast", "user"]}))
    assert recv(ws) == {"type": "subscribed", "facility": "kept", "audiences": ["broadcast", "user"]}
    assert recv(ws)["data"] == "the last one"  # WS4REDIS_EXPIRE: the kept message of the new channel
    RedisPublisher(facility="kept", users=["alice"]).publish_message("for alice")
    assert recv(ws)["data"] == "for alice"
    ws.send(json.dumps({"type": "subscribe", "facility": "kept", "audiences": ["group"]}))
    assert recv(ws)["type"] == "subscribed"
    anonymous = v2(uvicorn, "/ws/other?subscribe-broadcast")
    anonymous.send(json.dumps({"type": "subscribe", "facility": "kept", "audiences": ["user"]}))
    assert recv(anonymous)["reason"] == "subscribe-user needs a logged-in user"


def test_presence_and_join_leave_events(uvicorn: AsgiServer, people: People) -> None:
    alice = v2(uvicorn, "/ws/room?subscribe-broadcast", cookie=people.cookie("alice"))
    bob = v2(uvicorn, "/ws/room?subscribe-broadcast", cookie=people.cookie("bob"))
    assert labels("room") == [("alice", 1), ("bob", 1)]
    bob.close()
    while (event := recv(alice))["type"] != "leave":
        assert event["type"] == "join", event
    assert event["user"] == "bob"
    assert labels("room") == [("alice", 1)]


def test_a_message_over_the_size_limit_closes_with_1009(uvicorn: AsgiServer, people: People) -> None:
    ws = connect(uvicorn, "/ws/big?publish-broadcast", cookie=people.cookie("alice"))  # type: ignore[arg-type]
    ws.send("x" * 2000)
    assert_closed(ws, CloseCode.MESSAGE_TOO_BIG)


def test_the_heartbeat_is_answered(uvicorn: AsgiServer) -> None:
    ws = connect(uvicorn, "/ws/beat?subscribe-broadcast")  # type: ignore[arg-type]
    ws.send("--heartbeat--")
    assert ws.recv() == "--heartbeat--"


def test_too_many_connections_per_user_is_429(asgi_servers: Callable[..., AsgiServer], people: People) -> None:
    server = asgi_servers("uvicorn", {"WS4REDIS_MAX_CONNECTIONS_PER_USER": 1})
    cookie = people.cookie("alice")
    first = connect(server, "/ws/q?subscribe-user", cookie=cookie)  # type: ignore[arg-type]
    assert refused_status(server, "/ws/q?subscribe-user", cookie=cookie) == 429  # type: ignore[arg-type]
    first.close()


def test_nginx_in_front_of_gunicorn_with_uvicorn_workers(
    asgi_servers: Callable[..., AsgiServer], people: People, tmp_path: Path
) -> None:
    """``nginx/ws4redis-asgi.conf`` as shipped (addresses substituted) in front of two uvicorn worker processes."""
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    app = asgi_servers("gunicorn", OVERRIDES)
    nginx = Nginx(ROOT / "nginx" / "ws4redis-asgi.conf", {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{app.port};",
        "alias /srv/ws4redis/static/;": f"alias {tmp_path}/static/;",
    }, tmp_path)
    try:
        assert get(f"http://127.0.0.1:{nginx.port}/")[:2] == (200, "django page")
        cookie = people.cookie("alice")
        origin = f"http://127.0.0.1:{nginx.port}"  # the page's own origin: nginx passes the Host through
        sockets = [connect(nginx, "/ws/front?subscribe-user", cookie=cookie, origin=origin)  # type: ignore[arg-type]
                   for _ in range(4)]
        RedisPublisher(facility="front", users=["alice"]).publish_message("through nginx")
        assert [ws.recv() for ws in sockets] == ["through nginx"] * 4
        status = refused_status(nginx, "/ws/front?subscribe-user", origin="http://evil.example")  # type: ignore[arg-type]
        assert status == 403
    finally:
        nginx.stop()


def test_no_redis_is_503_with_retry_after(asgi_servers: Callable[..., AsgiServer]) -> None:
    """The subscription is confirmed by Redis before the upgrade: without Redis the client is told to come back."""
    from tests.servers import free_port

    server = asgi_servers("uvicorn", {
        "WS4REDIS_CONNECTION": {"host": "127.0.0.1", "port": free_port()}, "WS4REDIS_SUBSCRIBE_TIMEOUT": 1,
    })
    try:
        connect(server, "/ws/down?subscribe-broadcast")  # type: ignore[arg-type]
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code == 503
        assert refused.resp_headers.get("retry-after") == "5"
    else:
        raise AssertionError("accepted without Redis")


def test_a_drain_while_sockets_are_opening_never_fails_one(uvicorn: AsgiServer) -> None:
    """A drain (or a revocation) may reach a socket between Redis' confirmation and its welcome: it must close with
    1001 like the others, never 1011 (the session was once opened after it had started closing)."""
    import threading

    sockets: list[websocket.WebSocket] = []
    lock = threading.Lock()

    def open_some() -> None:
        for _ in range(15):
            ws = connect(uvicorn, "/ws/room?subscribe-broadcast", subprotocols=["ws4redis.v2"])  # type: ignore[arg-type]
            with lock:
                sockets.append(ws)

    threads = [threading.Thread(target=open_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        call_command("ws4redis_drain", window=1, stdout=io.StringIO())
    for thread in threads:
        thread.join()
    call_command("ws4redis_drain", window=1, stdout=io.StringIO())  # the ones opened after the last drain
    codes = []
    for ws in sockets:
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                codes.append(int.from_bytes(data[:2], "big"))
                ws.shutdown()
                break
    assert set(codes) == {CloseCode.GOING_AWAY}, sorted(codes)


def test_a_redis_restart_keeps_the_sockets_and_tells_v2_clients(uvicorn: AsgiServer, redis_server: Any) -> None:
    """The asyncio hub reconnects and resubscribes; each socket stays open, a v2 client is told messages may have
    been lost (``reconnected``), and what is published afterwards arrives."""
    from ws4redis.redis_store import reset_pool

    legacy = connect(uvicorn, "/ws/restart?subscribe-broadcast")  # type: ignore[arg-type]
    told = v2(uvicorn, "/ws/restart?subscribe-broadcast")
    redis_server.restart()  # a new, empty Redis on the same port
    reset_pool()  # this test process's own publishing pool held connections to the old one
    assert recv(told)["type"] == "reconnected"  # sent once Redis confirmed the resubscription
    RedisPublisher(facility="restart", broadcast=True).publish_message("after the restart")
    assert recv(told)["data"] == "after the restart"
    assert legacy.recv() == "after the restart"


def test_a_client_that_stops_reading_is_dropped_without_holding_the_others(
    asgi_servers: Callable[..., AsgiServer],
) -> None:
    """Its queue reaches WS4REDIS_QUEUE_BYTES while its task waits to write to it: the session gives up on it (4008,
    counted) at once, not after the 30 s send timeout, and lets go of its queue and subscriptions; a reading client
    on the same channel gets every message meanwhile. (The TCP connection itself is the server's to close: ASGI has
    no message to abort one.)"""
    import socket
    import time
    import urllib.request

    from tests.servers import raw_upgrade

    server = asgi_servers("uvicorn", {"WS4REDIS_QUEUE_BYTES": 200_000})

    def dropped() -> bool:
        page = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
        return 'ws4redis_connections_closed_total{code="4008"} 1.0' in page

    assert not dropped()
    stuck = raw_upgrade(server.port, "/ws/flood?subscribe-broadcast")
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
    reader = connect(server, "/ws/flood?subscribe-broadcast")  # type: ignore[arg-type]
    publisher = RedisPublisher(facility="flood", broadcast=True)
    payload = "x" * 20_000
    started = time.monotonic()
    for i in range(300):  # 6 MB: far more than the socket buffers and the queue limit hold
        publisher.publish_message(f"{i:04d}{payload}")
        assert reader.recv()[:4] == f"{i:04d}"
    wait_until(dropped, timeout=10)
    assert time.monotonic() - started < 15
    stuck.close()


def test_online_and_offline_signals_fire_in_the_asgi_process(
    asgi_servers: Callable[..., AsgiServer], people: People, redis_server: Any,
) -> None:
    """The receivers of ``user_online``/``user_offline`` run in the server's process under ASGI too: its tracker
    calls run in worker threads, where the gevent dispatcher's queue would never be served."""
    from tests.test_presence_signals import PREFIX, kinds, overrides

    # No grace: the disconnect itself claims the offline (a sweeper of another server could claim a later one).
    presence = {"room-asgi": {"ttl": 30, "grace": 0}}
    server = asgi_servers("uvicorn", {**overrides(), "WS4REDIS_PRESENCE": presence})
    with override_settings(WS4REDIS_PRESENCE=presence, WS4REDIS_PREFIX=PREFIX):
        ws = v2(server, "/ws/room-asgi?subscribe-broadcast", cookie=people.cookie("alice"))
        online = [("user_online", "room-asgi", "alice")]
        wait_until(lambda: kinds(redis_server, "room-asgi") == online)
        ws.close()
        wait_until(lambda: kinds(redis_server, "room-asgi") == [*online, ("user_offline", "room-asgi", "alice")])


def test_an_open_socket_holds_no_django_request(redis_server: Any) -> None:
    """Once a legacy socket without hooks is open, nothing holds its handshake's Django request and WSGI environ
    any more (they were most of ws4redis' share of an idle socket, bench/ S2): neither the connection nor the frames
    of the ASGI call it runs in. In this process, to see its objects: a real uvicorn on the test's own loop, a real
    websocket client, a message through Redis to know the socket is served."""
    import asyncio
    import gc
    import socket

    import uvicorn
    from django.http import HttpRequest
    from websockets.asyncio.client import connect as ws_connect

    from ws4redis.asgi import application

    def requests() -> list[HttpRequest]:
        gc.collect()
        # type(), not isinstance(): the latter would set up the lazy objects among them (staticfiles storage)
        return [o for o in gc.get_objects() if issubclass(type(o), HttpRequest) and "/ws/heldrequest" in o.path]

    async def main() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(application, lifespan="on", log_level="warning",
                                               ws="websockets-sansio"))
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        try:
            while not server.started:  # uvicorn has no event to await for this
                await asyncio.sleep(0.01)
            url = f"ws://127.0.0.1:{port}/ws/heldrequest?subscribe-broadcast"
            async with ws_connect(url, compression=None) as ws:
                await asyncio.to_thread(
                    RedisPublisher(facility="heldrequest", broadcast=True).publish_message, "served"
                )
                assert await asyncio.wait_for(ws.recv(), 10) == "served"
                assert requests() == []
        finally:
            server.should_exit = True
            await serving
            listener.close()

    asyncio.run(main())
