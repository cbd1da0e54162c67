"""Several uWSGI instances of several workers against one Redis: each publish reaches each socket exactly once.

Redis fans a message out once per subscribed process (one hub per worker); the worker fans it out to its sockets.
Two instances of two workers each make four hubs: a publish must count four receivers and every socket, wherever
it landed, must see every message once, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from tests.conftest import People, assert_silent, connect
from tests.redis_topologies import hub_pids, wait_until
from tests.servers import RedisServer, UwsgiServer
from ws4redis.publisher import RedisPublisher

MESSAGES = 1000


@pytest.fixture(scope="module")
def instances(redis_server: RedisServer, django_db_setup: Any, django_db_blocker: Any) -> Iterator[list[UwsgiServer]]:
    servers = [UwsgiServer(processes=2) for _ in range(2)]
    for server in servers:  # the master listens before it forks its workers
        wait_until(lambda server=server: len(server.workers()) == 2, what="two workers")
    yield servers
    for server in servers:
        server.stop()


def spread_sockets(instances: list[UwsgiServer], redis_server: RedisServer, path: str, channel: str, *,
                   per_batch: int = 10, cookie: str | None = None, limit: int = 400) -> list[websocket.WebSocket]:
    """Open sockets on every instance, concurrently, until each of the four workers holds some.

    Which worker accepts a connection is the kernel's choice; opening them in parallel batches keeps several
    workers accepting. The proof that every worker serves sockets of ``channel``: CLIENT LIST shows exactly one hub
    per worker pid (named ``ws4redis-hub:<host>:<pid>``) and PUBSUB NUMSUB shows four subscribers of ``channel``,
    so each of the four hubs subscribed it, which a hub does only for a socket of its own worker.
    """
    workers = {pid for server in instances for pid in server.workers()}
    assert len(workers) == 4
    sockets: list[websocket.WebSocket] = []
    client = redis_server.client()
    try:
        def spread() -> bool:
            # Other servers of the test session may hold hubs on this Redis too, never on this channel.
            return workers <= set(hub_pids(client)) and client.pubsub_numsub(channel)[0][1] == len(workers)

        while not spread():
            assert len(sockets) < limit, f"sockets did not spread: hubs {hub_pids(client)}, workers {workers}"
            batch: list[websocket.WebSocket] = []
            lock = threading.Lock()

            def open_one(server: UwsgiServer, batch: list[websocket.WebSocket], lock: threading.Lock) -> None:
                ws = connect(server, path, cookie=cookie)
                with lock:
                    batch.append(ws)

            threads = [threading.Thread(target=open_one, args=(s, batch, lock))
                       for s in instances for _ in range(per_batch)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sockets.extend(batch)
    finally:
        client.close()
    return sockets


def test_two_instances_deliver_each_message_exactly_once_per_socket(instances: list[UwsgiServer],
                                                                    redis_server: RedisServer) -> None:
    sockets = spread_sockets(instances, redis_server, "/ws/multi?subscribe-broadcast", "test:broadcast:multi")
    client = redis_server.client()
    workers = {pid for server in instances for pid in server.workers()}
    ours = [pid for pid in hub_pids(client) if pid in workers]
    assert sorted(ours) == sorted(workers)  # one pub/sub link per worker, no more
    client.close()

    publisher = RedisPublisher(facility="multi", broadcast=True)
    receivers = [publisher.publish_message(f"{i}") for i in range(MESSAGES)]
    assert set(receivers) == {4}  # Redis handed every message to each of the four hubs, once
    expected = [f"{i}" for i in range(MESSAGES)]
    for ws in sockets:
        assert [ws.recv() for _ in range(MESSAGES)] == expected
    for ws in sockets[:: max(1, len(sockets) // 8)]:
        assert_silent(ws, 0.2)  # and nothing more: no duplicate from another hub


def test_user_messages_reach_that_users_sockets_on_every_instance(instances: list[UwsgiServer],
                                                                  redis_server: RedisServer, people: People) -> None:
    alice = spread_sockets(instances, redis_server, "/ws/inbox?subscribe-user", "test:user:alice:inbox",
                           cookie=people.cookie("alice"))
    bob = [connect(server, "/ws/inbox?subscribe-user", cookie=people.cookie("bob")) for server in instances]
    for i in range(20):
        RedisPublisher(facility="inbox", users=["alice"]).publish_message(f"alice {i}")
    RedisPublisher(facility="inbox", users=["bob"]).publish_message("bob only")
    for ws in alice:
        assert [ws.recv() for _ in range(20)] == [f"alice {i}" for i in range(20)]
        assert_silent(ws, 0.05)
    for ws in bob:
        assert ws.recv() == "bob only"
