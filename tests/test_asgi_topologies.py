"""Sentinel and Cluster under ASGI: uvicorn serving the test project through a Sentinel-managed Redis and through a
Redis Cluster with sharded pub/sub, end to end (real redis-server processes, real websocket clients).

What the gevent suites (``test_sentinel``, ``test_cluster``) check under uWSGI, checked on the asyncio runtime: the
hub's links and the driver's own Redis work (client publishing, kept messages, history positions and replays) reach
the master the sentinels name, or the shard that owns each channel; a master is SIGKILLed and the same sockets keep
receiving, a v2 client without a gap, and a socket opened after the failover works too.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from tests.asgi_servers import AsgiServer
from tests.conftest import People, assert_silent, connect
from tests.redis_topologies import ClusterNodes, SentinelGroup, hub_pids, wait_until
from tests.test_cluster import channel, node_of, owner, primaries, publish_with_patience, sharded_subscribers
from tests.test_history import V2Client
from ws4redis.publisher import RedisPublisher
from ws4redis.quota import ConnectionQuota
from ws4redis.redis_store import get_connection, reset_pool

HISTORY = {"hist": {"size": 1000, "ttl": 600}}


@contextlib.contextmanager
def _serving(setting: dict[str, Any]) -> Iterator[AsgiServer]:
    """uvicorn on this Redis topology (a user's connection quota too), with this process's publisher on the same one;
    the server is stopped and the publisher's pool forgotten after."""
    server = AsgiServer("uvicorn", overrides={
        "WS4REDIS_POLICY": "permissive", "WS4REDIS_EXPIRE": 60, "WS4REDIS_HISTORY": HISTORY,
        "WS4REDIS_CONNECTION": setting, "WS4REDIS_MAX_CONNECTIONS_PER_USER": 5,
    })
    try:
        with override_settings(WS4REDIS_CONNECTION=setting, WS4REDIS_HISTORY=HISTORY, WS4REDIS_EXPIRE=60):
            reset_pool()
            yield server
    finally:
        server.stop()
        reset_pool()


def streamed(client: V2Client) -> list[str]:
    """What a v2 client received from the stream (the kept last message at connect has no id)."""
    return [m["data"] for m in client.messages if m["id"] is not None]


def _recovered(client: V2Client) -> None:
    answer = client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))
    assert answer["type"] == "recovered", answer


# -- Sentinel ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    topology = SentinelGroup("asgimaster")
    yield topology
    topology.stop()


def test_sockets_follow_the_master_through_a_sentinel_failover(
    group: SentinelGroup, django_db_setup: Any, django_db_blocker: Any, people: People,
) -> None:
    setting = {"sentinels": group.addresses, "service_name": group.service, "db": 0}
    with _serving(setting) as server:
        _failover(group, server, people)


def _failover(group: SentinelGroup, server: AsgiServer, people: People) -> None:
    alice = people.cookie("alice")  # a user: the connection quota is written through the sentinels' master too
    sockets = [connect(server, "/ws/failover?subscribe-broadcast", cookie=alice) for _ in range(3)]
    talker = connect(server, "/ws/failover?publish-broadcast")  # a client's publish: the server's Redis work
    history = V2Client(server, "/ws/hist?subscribe-broadcast")
    history.connect()
    _recovered(history)
    master = group.master.client()
    assert hub_pids(master) == server.workers()  # uvicorn's hub holds its one link on the master
    master.close()

    publisher = RedisPublisher(facility="failover", broadcast=True)
    assert publisher.publish_message("before") == 1
    talker.send("client before")
    for ws in sockets:
        assert [ws.recv(), ws.recv()] == ["before", "client before"]
    feed = RedisPublisher(facility="hist", broadcast=True)
    feed.publish_message("0")
    assert history.receive_until(lambda f: f["type"] == "message")["data"] == "0"

    group.master.stop(signal.SIGKILL)  # the master dies without a word; only its pid is ours to kill
    wait_until(lambda: group.master_port() == group.replica.port, 30, what="sentinels promoted the replica")
    promoted = group.replica.client()
    wait_until(lambda: promoted.pubsub_numsub("test:broadcast:failover")[0][1] == 1, 30,
               what="the hub resubscribed on the new master")
    assert hub_pids(promoted) == server.workers()
    promoted.close()

    assert publisher.publish_message("after") == 1
    talker.send("client after")  # the server's own client found the new master
    for i, ws in enumerate(sockets):
        assert [ws.recv(), ws.recv()] == ["after", "client after"], i  # the same sockets: none was closed
    assert_silent(sockets[0])
    feed.publish_message("1")
    history.receive_until(lambda f: f["type"] == "message" and f["data"] == "1")
    assert streamed(history) == ["0", "1"]  # nothing twice, nothing lost, and no "reconnected" gap notice
    assert [c for c in history.controls if c["type"] == "reconnected" and c.get("lost")] == []
    assert get_connection().zcard(ConnectionQuota("alice", 5).key) == 3  # the quota's entries, on the new master

    late = connect(server, "/ws/failover?subscribe-broadcast", cookie=alice)  # quota and kept message, new master
    assert late.recv() == "client after"  # the kept last message
    history.close()
    history.connect()  # resume from its positions: replayed from the promoted master's stream
    _recovered(history)
    feed.publish_message("2")
    history.receive_until(lambda f: f["type"] == "message" and f["data"] == "2")
    assert streamed(history) == ["0", "1", "2"]


# -- Cluster ----------------------------------------------------------------------------------------------------------
FACILITIES = [f"f{i}" for i in range(12)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterNodes]:
    nodes = ClusterNodes(masters=3, replicas=1)
    yield nodes
    nodes.stop()


def test_sharded_pub_sub_through_a_cluster_and_a_shard_failover(
    cluster: ClusterNodes, django_db_setup: Any, django_db_blocker: Any, people: People,
) -> None:
    setting = {"cluster_nodes": cluster.startup_nodes[:3]}
    with _serving(setting) as server:
        _sharded(cluster, server, people)


def _sharded(cluster: ClusterNodes, server: AsgiServer, people: People) -> None:
    shards = {owner(cluster, channel(f)) for f in FACILITIES}
    assert shards == set(primaries(cluster))  # the channels' slots cover every shard
    sockets = [(f, connect(server, f"/ws/{f}?subscribe-broadcast")) for f in FACILITIES]
    assert all(sharded_subscribers(cluster, channel(f)) == 1 for f in FACILITIES)  # SSUBSCRIBE on the owner
    talkers = {f: connect(server, f"/ws/{f}?publish-broadcast") for f in FACILITIES[:3]}  # SPUBLISH by the server
    history = V2Client(server, "/ws/hist?subscribe-broadcast")
    history.connect()
    _recovered(history)

    for facility in FACILITIES:
        RedisPublisher(facility=facility, broadcast=True).publish_message(f"before {facility}")
    for facility, ws in sockets:
        assert ws.recv() == f"before {facility}"
    for facility, talker in talkers.items():
        talker.send(f"client {facility}")
        assert dict(sockets)[facility].recv() == f"client {facility}"
    feed = RedisPublisher(facility="hist", broadcast=True)
    feed.publish_message("0")
    assert history.receive_until(lambda f: f["type"] == "message")["data"] == "0"

    # Kept messages of channels on three slots, read when the socket opens and when a v2 client subscribes later.
    cookie = people.cookie("alice")
    key = People.session_key(cookie)
    RedisPublisher(facility="kept", users=["alice"]).publish_message("kept user")
    RedisPublisher(facility="kept", sessions=[key]).publish_message("kept session")
    kept = connect(server, "/ws/kept?subscribe-broadcast&subscribe-user&subscribe-session", cookie=cookie)  # quota
    assert sorted(kept.recv() for _ in range(2)) == ["kept session", "kept user"]  # no kept broadcast
    assert get_connection().zcard(ConnectionQuota("alice", 5).key) == 1  # the quota's entry, on its shard
    runtime = connect(server, "/ws/other?subscribe-broadcast", cookie=cookie, subprotocols=["ws4redis.v2"])
    assert json.loads(runtime.recv())["type"] == "welcome"
    runtime.send(json.dumps({"type": "subscribe", "facility": "kept", "audiences": ["user", "session"]}))
    frames = [json.loads(runtime.recv()) for _ in range(3)]
    assert sorted(f["data"] for f in frames if f["type"] == "message") == ["kept session", "kept user"], frames

    victim = owner(cluster, channel(FACILITIES[0]))
    node_of(cluster, victim).stop(signal.SIGKILL)
    wait_until(lambda: victim not in primaries(cluster) and len(primaries(cluster)) == 3, 30,
               what="a replica promoted")
    wait_until(lambda: all(sharded_subscribers(cluster, channel(f)) == 1 for f in FACILITIES), 30,
               what="the hub resubscribed on the new shard owners")
    for facility in FACILITIES:
        publish_with_patience(facility, f"after {facility}")
    for facility, ws in sockets:
        assert ws.recv() == f"after {facility}"  # the same sockets: none was closed
    for facility, talker in talkers.items():
        talker.send(f"client after {facility}")
        assert dict(sockets)[facility].recv() == f"client after {facility}"
    feed.publish_message("1")
    history.receive_until(lambda f: f["type"] == "message" and f["data"] == "1")
    assert streamed(history) == ["0", "1"]
    history.close()
    history.connect()
    _recovered(history)

