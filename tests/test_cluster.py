"""Redis Cluster with sharded pub/sub: three masters with a replica each, from Debian's redis-server, on loopback.

Publishing uses SPUBLISH (only the shard owning a channel's slot carries it) and each worker's hub SSUBSCRIBEs a
channel on that shard. 300 websockets on channels whose slots cover every shard receive every message; a shard's
master is SIGKILLed, its replica takes over, and messages published afterwards arrive on the same sockets.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.test import override_settings
from redis.crc import key_slot

from tests.conftest import People, connect
from tests.redis_topologies import ClusterNodes, RedisNode, wait_until
from tests.servers import RedisServer, UwsgiServer
from ws4redis import settings as ws4redis_settings
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import reset_pool

FACILITIES = [f"f{i}" for i in range(30)]
SOCKETS = 300


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterNodes]:
    nodes = ClusterNodes(masters=3, replicas=1)
    yield nodes
    nodes.stop()


def cluster_setting(cluster: ClusterNodes) -> dict[str, Any]:
    return {"cluster_nodes": cluster.startup_nodes[:3]}


@pytest.fixture(scope="module")
def server(cluster: ClusterNodes, django_db_setup: Any, django_db_blocker: Any) -> Iterator[UwsgiServer]:
    uwsgi = UwsgiServer(processes=2, overrides={"WS4REDIS_CONNECTION": cluster_setting(cluster), "WS4REDIS_EXPIRE": 60})
    wait_until(lambda: len(uwsgi.workers()) == 2, what="two workers")
    yield uwsgi
    uwsgi.stop()


@pytest.fixture
def cluster_publisher(cluster: ClusterNodes) -> Iterator[None]:
    with override_settings(WS4REDIS_CONNECTION=cluster_setting(cluster)):
        reset_pool()
        yield
    reset_pool()


def channel(facility: str) -> str:
    return f"test:broadcast:{facility}"


def primaries(cluster: ClusterNodes) -> dict[int, tuple[int, int]]:
    """``{port of a primary: (first slot, last slot)}`` as the cluster sees it now (from any live node)."""
    for node in cluster.nodes:
        if node.proc.poll() is not None:
            continue
        client = node.client()
        try:
            return {int(s[2][1]): (int(s[0]), int(s[1])) for s in client.execute_command("CLUSTER", "SLOTS")}
        except redis.RedisError:
            continue
        finally:
            client.close()
    raise AssertionError("no live cluster node")


def owner(cluster: ClusterNodes, name: str) -> int:
    slot = key_slot(name.encode())
    ranges: dict[int, list[tuple[int, int]]] = {}
    for node in cluster.nodes:
        if node.proc.poll() is not None:
            continue
        client = node.client()
        try:
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                ranges.setdefault(int(master[1]), []).append((int(start), int(end)))
            break
        finally:
            client.close()
    return next(port for port, spans in ranges.items() if any(a <= slot <= b for a, b in spans))


def node_of(cluster: ClusterNodes, port: int) -> RedisNode:
    return next(n for n in cluster.nodes if n.port == port)


def sharded_subscribers(cluster: ClusterNodes, name: str) -> int:
    client = node_of(cluster, owner(cluster, name)).client()
    try:
        return int(client.execute_command("PUBSUB", "SHARDNUMSUB", name)[1])
    except redis.RedisError:
        return -1
    finally:
        client.close()


def test_url_form_is_the_same_setting() -> None:
    with override_settings(WS4REDIS_CONNECTION="redis+cluster://10.0.0.1:7000,10.0.0.2"):
        assert ws4redis_settings.connection_kwargs() == {"cluster_nodes": [("10.0.0.1", 7000), ("10.0.0.2", 6379)]}


def test_300_sockets_on_every_shard_survive_a_master_failover(cluster: ClusterNodes, server: UwsgiServer,
                                                               cluster_publisher: None) -> None:
    shards = {owner(cluster, channel(f)) for f in FACILITIES}
    assert shards == set(primaries(cluster))  # the channels' slots cover every shard
    sockets = [(f, connect(server, f"/ws/{f}?subscribe-broadcast")) for f in FACILITIES * (SOCKETS // len(FACILITIES))]
    hubs_per_channel = {f: sharded_subscribers(cluster, channel(f)) for f in FACILITIES}
    assert min(hubs_per_channel.values()) >= 1  # sharded subscriptions on the owning shard, no classic ones
    assert max(hubs_per_channel.values()) == 2  # and the sockets are on both workers
    one = node_of(cluster, next(iter(shards))).client()
    assert one.pubsub_numsub(channel(FACILITIES[0]))[0][1] == 0
    hubs = [c for c in one.client_list() if str(c.get("name") or "").startswith("ws4redis-hub:")]
    assert hubs and all(int(c.get("ssub") or 0) + int(c.get("sub") or 0) > 0 for c in hubs)
    one.close()

    for facility in FACILITIES:
        assert RedisPublisher(facility=facility, broadcast=True).publish_message(f"before {facility}") >= 1
    for facility, ws in sockets:
        assert ws.recv() == f"before {facility}"

    victim_port = owner(cluster, channel(FACILITIES[0]))
    node_of(cluster, victim_port).stop(signal.SIGKILL)
    wait_until(lambda: victim_port not in primaries(cluster) and len(primaries(cluster)) == 3, 30,
               what="a replica promoted")
    wait_until(lambda: all(sharded_subscribers(cluster, channel(f)) == n for f, n in hubs_per_channel.items()), 30,
               what="every hub resubscribed on the new shard owners")

    for facility in FACILITIES:
        publish_with_patience(facility, f"after {facility}")
    for facility, ws in sockets:
        assert ws.recv() == f"after {facility}"  # the same sockets: none was closed


def test_kept_messages_of_channels_on_several_shards(cluster: ClusterNodes, server: UwsgiServer,
                                                     people: People, cluster_publisher: None) -> None:
    cookie = people.cookie("alice")
    channels = ["test:broadcast:kept", "test:user:alice:kept", f"test:session:{People.session_key(cookie)}:kept"]
    assert len({key_slot(c.encode()) for c in channels}) == 3  # three slots: one MGET could not read them
    with override_settings(WS4REDIS_EXPIRE=60):
        RedisPublisher(facility="kept", broadcast=True).publish_message("kept broadcast")
        RedisPublisher(facility="kept", users=["alice"]).publish_message("kept user")
        RedisPublisher(facility="kept", sessions=[People.session_key(cookie)]).publish_message("kept session")
    ws = connect(server, "/ws/kept?subscribe-broadcast&subscribe-user&subscribe-session", cookie=cookie)
    assert sorted(ws.recv() for _ in range(3)) == ["kept broadcast", "kept session", "kept user"]
    out = io.StringIO()
    call_command("ws4redis_status", stdout=out)  # one line per shard: its primary and the hub links it holds
    lines = [line for line in out.getvalue().splitlines() if "hub link(s)" in line]
    assert len(lines) == 3, out.getvalue()
    assert any(" 0 hub link(s)" not in line for line in lines), out.getvalue()


def publish_with_patience(facility: str, message: str) -> None:
    """A publisher whose cached topology is stale retries once redis-py has re-read it."""
    deadline = time.monotonic() + 15
    while True:
        try:
            RedisPublisher(facility=facility, broadcast=True).publish_message(message)
            return
        except (redis.ConnectionError, redis.exceptions.ClusterError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- measure: deliveries/s and Redis CPU per 10k deliveries, cluster vs one Redis, in one run -----------------------
def redis_cpu(ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            info = client.info("cpu")
            total += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        except redis.ConnectionError:
            pass
        finally:
            client.close()
    return total


def run_load(server: UwsgiServer, ports: list[int], *, per_channel: int, messages: int) -> dict[str, float]:
    facilities = [f"load{f}" for f in FACILITIES]
    sockets = [(f, connect(server, f"/ws/{f}?subscribe-broadcast", timeout=30))
               for f in facilities for _ in range(per_channel)]
    publishers = [RedisPublisher(facility=f, broadcast=True) for f in facilities]
    cpu_before = redis_cpu(ports)
    started = time.perf_counter()
    for i in range(messages):
        for publisher in publishers:
            publisher.publish_message(f"{i}")
    published = time.perf_counter() - started
    for _, ws in sockets:
        for _i in range(messages):
            ws.recv()
    elapsed = time.perf_counter() - started
    cpu = redis_cpu(ports) - cpu_before
    deliveries = len(sockets) * messages
    for _, ws in sockets:
        ws.close()
    return {
        "deliveries": deliveries,
        "seconds": round(elapsed, 3),
        "publish_seconds": round(published, 3),  # this process publishing, one round trip per message
        "deliveries_per_s": round(deliveries / elapsed),
        "redis_cpu_s_per_10k_deliveries": round(cpu / deliveries * 10_000, 4),
        "publishes": messages * len(facilities),
    }


def test_measure_cluster_against_one_redis(cluster: ClusterNodes, server: UwsgiServer, redis_server: RedisServer,
                                           cluster_publisher: None) -> None:
    single = UwsgiServer(processes=2, overrides={"WS4REDIS_EXPIRE": 60})
    try:
        live = [n.port for n in cluster.nodes if n.proc.poll() is None]
        sharded = run_load(server, live, per_channel=4, messages=300)
        with override_settings(WS4REDIS_CONNECTION={"host": "127.0.0.1", "port": redis_server.port}):
            reset_pool()
            one = run_load(single, [redis_server.port], per_channel=4, messages=300)
    finally:
        single.stop()
    report = {"cluster_sharded": sharded, "single_redis": one, "workers": 2, "channels": len(FACILITIES)}
    out = Path(os.environ.get("WS4REDIS_MEASURE_OUT", Path(__file__).parent.parent / "test-output" / "cluster.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    assert sharded["deliveries"] == one["deliveries"]



def test_history_and_recovery_on_a_cluster(cluster: ClusterNodes, cluster_publisher: None) -> None:
    """The stream key is hash-tagged into the channel's slot, so the atomic publish script runs on one shard (with
    SPUBLISH) and a v2 client that reconnects gets what it missed."""
    from tests.test_history import V2Client

    windows = {"hist": {"size": 1000, "ttl": 600}}
    uwsgi = UwsgiServer(overrides={"WS4REDIS_CONNECTION": cluster_setting(cluster), "WS4REDIS_HISTORY": windows})
    try:
        client = V2Client(uwsgi, "/ws/hist?subscribe-broadcast")
        client.connect()
        client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))
        with override_settings(WS4REDIS_HISTORY=windows):
            publisher = RedisPublisher(facility="hist", broadcast=True)
            for i in range(10):
                publisher.publish_message(str(i))
            while len(client.messages) < 10:
                client.receive()
            client.close()
            for i in range(10, 20):
                publisher.publish_message(str(i))  # while the client is away
        client.connect()
        answer = client.receive_until(lambda f: f["type"] in ("recovered", "not_recovered"))
        assert answer["type"] == "recovered", answer
        while len(client.messages) < 20:
            client.receive()
        assert client.data() == [str(i) for i in range(20)]
        client.close()
    finally:
        uwsgi.stop()
