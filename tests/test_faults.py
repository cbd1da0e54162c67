"""Faults and bad input: Redis restarts, a killed worker, misbehaving clients. Everyone else keeps being served."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable

import websocket

from tests.conftest import People, connect, receive_all
from tests.servers import RedisServer, UwsgiServer, tcp_connections
from tests.test_revocation import assert_closed
from tests.test_websocket import wait_until
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import reset_pool


def peer_ports_by_worker(server: UwsgiServer) -> dict[int, set[int]]:
    """For each worker pid, the client ports of the established connections it holds on the server's port."""
    return {
        pid: {remote for local, remote in tcp_connections(pid) if local == server.port} for pid in server.workers()
    }


def test_redis_restart_with_500_clients(uwsgi_factory: Callable[..., UwsgiServer], redis_server: RedisServer) -> None:
    server = uwsgi_factory({"WS4REDIS_MAX_SUBSCRIPTIONS": 101})  # a server of its own
    sockets = [connect(server, "/ws/restart?subscribe-broadcast") for _ in range(500)]
    redis_server.restart()  # a new, empty Redis on the same port
    reset_pool()  # this test process's own publishing pool held connections to the old one
    client = redis_server.client()
    wait_until(lambda: client.pubsub_numsub("test:broadcast:restart")[0][1] == 1, timeout=20)
    client.close()
    RedisPublisher(facility="restart", broadcast=True).publish_message("after the restart")
    assert sum(ws.recv() == "after the restart" for ws in sockets) == 500  # all stayed connected
    assert "reconnected to Redis, resubscribed" in server.output()


def test_killed_worker_loses_only_its_own_connections(
    uwsgi_factory: Callable[..., UwsgiServer], redis_server: RedisServer
) -> None:
    server = uwsgi_factory(processes=2)
    sockets: list[websocket.WebSocket] = []
    # Open sockets until both workers hold some (the kernel decides which worker accepts).
    while len(sockets) < 400:
        sockets.append(connect(server, "/ws/kill?subscribe-broadcast"))
        if len(sockets) % 20 == 0 and all(peer_ports_by_worker(server).values()):
            break
    owners = peer_ports_by_worker(server)
    victim, survivor = sorted(owners, key=lambda pid: len(owners[pid]), reverse=True)
    assert owners[victim] and owners[survivor], owners
    os.kill(victim, signal.SIGKILL)
    RedisPublisher(facility="kill", broadcast=True).publish_message("survivors only")
    for ws in sockets:
        port = ws.sock.getsockname()[1]
        if port in owners[survivor]:
            assert ws.recv() == "survivors only"
        else:
            assert_closed(ws, None)  # the kernel ends the dead worker's sockets: no close frame


# -- misbehaving clients --------------------------------------------------------------------------------------------
HANDSHAKE = (
    "GET /ws/calm?subscribe-broadcast HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def raw(server: UwsgiServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def upgraded(server: UwsgiServer) -> socket.socket:
    sock = raw(server)
    sock.sendall(HANDSHAKE.format(port=server.port).encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


def masked(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame built by websocket-client's own encoder (masked, as RFC 6455 requires)."""
    return websocket.ABNF(fin=int(fin), opcode=opcode, data=payload).format()


MISBEHAVIOURS: dict[str, Callable[[UwsgiServer], socket.socket]] = {}


def misbehaviour(func: Callable[[UwsgiServer], socket.socket]) -> Callable[[UwsgiServer], socket.socket]:
    MISBEHAVIOURS[func.__name__] = func
    return func


@misbehaviour
def garbage_handshake(server: UwsgiServer) -> socket.socket:
    sock = raw(server)
    sock.sendall(b"\x16\x03\x01\x00\xff not http at all\r\n\r\n")
    return sock


@misbehaviour
def huge_headers(server: UwsgiServer) -> socket.socket:
    sock = raw(server)
    request = HANDSHAKE.format(port=server.port).replace("\r\n\r\n", "\r\nX-Big: " + "a" * 200_000 + "\r\n\r\n")
    try:
        sock.sendall(request.encode())
    except OSError:  # the server may hang up before reading it all: that is a fine answer
        pass
    return sock


@misbehaviour
def half_handshake(server: UwsgiServer) -> socket.socket:
    sock = raw(server)
    sock.sendall(HANDSHAKE.format(port=server.port).encode()[:40])
    return sock


@misbehaviour
def invalid_utf8(server: UwsgiServer) -> socket.socket:
    sock = upgraded(server)
    sock.sendall(masked(websocket.ABNF.OPCODE_TEXT, b"\xff\xfe\xfd"))
    return sock


@misbehaviour
def unmasked_frame(server: UwsgiServer) -> socket.socket:
    sock = upgraded(server)
    sock.sendall(b"\x81\x05hello")  # a server must never accept an unmasked client frame
    return sock


@misbehaviour
def fragments_around_a_ping(server: UwsgiServer) -> socket.socket:
    sock = upgraded(server)
    sock.sendall(
        masked(websocket.ABNF.OPCODE_TEXT, b"frag", fin=False)
        + masked(websocket.ABNF.OPCODE_PING, b"ping")
        + masked(websocket.ABNF.OPCODE_CONT, b"ment")
    )
    return sock


@misbehaviour
def tcp_reset(server: UwsgiServer) -> socket.socket:
    sock = upgraded(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    return sock


def test_200_misbehaving_connections_do_not_disturb_100_good_ones(
    uwsgi_factory: Callable[..., UwsgiServer], people: People
) -> None:
    server = uwsgi_factory({"WS4REDIS_MAX_SUBSCRIPTIONS": 102})  # a server of its own
    good = [connect(server, "/ws/calm?subscribe-broadcast") for _ in range(100)]
    kinds = list(MISBEHAVIOURS.values())
    bad = [kinds[i % len(kinds)](server) for i in range(200)]
    publisher = RedisPublisher(facility="calm", broadcast=True)
    for i in range(500):
        publisher.publish_message(f"{i}")
    expected = [f"{i}" for i in range(500)]
    for ws in good:
        assert receive_all(ws, 500) == expected
    for sock in bad:
        sock.close()
    assert server.proc.poll() is None
    connect(server, "/ws/calm?subscribe-broadcast")  # and it still accepts newcomers
