"""The asyncio hub (``ws4redis.runtime.asyncio.hub``) against real redis-servers: a single Redis, a Sentinel group
whose master dies, and a Redis Cluster with sharded pub/sub.

Each test runs its coroutine with ``asyncio.run`` (no pytest-asyncio in the shared environment). What the hub tells
a listener is awaited on queues; Redis' own view (PUBSUB NUMSUB, CLIENT LIST) is read with a blocking client.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from django.test import override_settings
from prometheus_client import REGISTRY
from redis.crc import key_slot

from tests.redis_topologies import ClusterNodes, SentinelGroup, wait_until
from tests.servers import RedisServer
from ws4redis import reach, wire
from ws4redis.hub import Delivery, HubUnavailable
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import get_connection, reset_pool
from ws4redis.revocation import control_channel, drain, instance_name, revoke
from ws4redis.runtime.asyncio import hub as asyncio_hub
from ws4redis.runtime.asyncio.hub import AsyncioHub, get_asyncio_hub

WAIT = 10.0  # seconds any one awaited event may take before the test fails


class Recorder:
    """A listener that keeps what the hub tells it, in order, for the test to await."""

    def __init__(self, on_reconnect: Callable[[], Any] | None = None) -> None:
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self.notices: asyncio.Queue[Any] = asyncio.Queue()
        self._on_reconnect = on_reconnect

    def deliver(self, delivery: Delivery) -> None:
        self.deliveries.put_nowait(delivery)

    def hub_reconnected(self) -> None:
        self.notices.put_nowait(("reconnected", self._on_reconnect() if self._on_reconnect else None))

    def revoke(self) -> None:
        self.notices.put_nowait("revoked")

    def shutdown(self, reconnect_in_ms: int) -> None:
        self.notices.put_nowait(("shutdown", reconnect_in_ms))

    async def next(self) -> Delivery:
        return await asyncio.wait_for(self.deliveries.get(), WAIT)

    async def notice(self) -> Any:
        return await asyncio.wait_for(self.notices.get(), WAIT)


def run(main: Callable[[AsyncioHub], Awaitable[None]]) -> None:
    """``main(hub)`` in a fresh event loop, the hub closed afterwards whatever happened."""

    async def wrapper() -> None:
        hub = AsyncioHub()
        try:
            await main(hub)
        finally:
            await hub.aclose()

    asyncio.run(wrapper())


def channel_of(facility: str) -> str:
    return sorted(RedisPublisher(facility=facility, broadcast=True)._publishers)[0]


async def publish(facility: str, message: bytes | str) -> int:
    """Publish as a Django view does (blocking redis-py, in a thread: the loop keeps reading meanwhile)."""
    return await asyncio.to_thread(RedisPublisher(facility=facility, broadcast=True).publish_message, message)


def numsub(client: redis.Redis, *channels: str) -> dict[str, int]:
    return {name.decode(): int(count) for name, count in client.pubsub_numsub(*channels)}


def hub_links(client: redis.Redis, hub: AsyncioHub) -> list[dict[str, Any]]:
    return [entry for entry in client.client_list(_type="pubsub") if entry.get("name") == hub.name]


def bad_records() -> float:
    return sum(
        sample.value for metric in REGISTRY.collect() if metric.name == "ws4redis_bad_records"
        for sample in metric.samples if sample.name == "ws4redis_bad_records_total"
    )


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection: redis.Redis = redis_server.client()
    yield connection
    connection.close()


# -- a single Redis ------------------------------------------------------------------------------------------------
@override_settings(WS4REDIS_HISTORY={"kept": {"size": 100, "ttl": 60}})
def test_attach_returns_once_subscribed_and_deliveries_carry_the_envelope(client: redis.Redis) -> None:
    async def main(hub: AsyncioHub) -> None:
        listener = Recorder()
        await hub.attach(listener, [channel_of("kept"), channel_of("plain")], timeout=WAIT)
        # No wait of any kind: once attach returned, Redis has the subscriptions.
        assert numsub(client, channel_of("kept"), channel_of("plain")) == {channel_of("kept"): 1,
                                                                            channel_of("plain"): 1}
        assert await publish("kept", "first") == 1
        delivery = await listener.next()
        assert (delivery.channel, delivery.data, delivery.text, delivery.event) == (channel_of("kept"), b"first",
                                                                                    True, False)
        assert wire.parse_stream_id(delivery.id) is not None  # the history stream's id, from the envelope
        assert await publish("plain", b"\x00\xff") == 1
        delivery = await listener.next()
        assert (delivery.data, delivery.text, delivery.id) == (b"\x00\xff", False, None)

    run(main)


def test_channels_are_reference_counted_on_one_pubsub_link(client: redis.Redis) -> None:
    async def main(hub: AsyncioHub) -> None:
        first, second = Recorder(), Recorder()
        shared, other = channel_of("shared"), channel_of("other")
        await hub.attach(first, [shared], timeout=WAIT, identity=[("user", "ann")])
        await hub.attach(second, [shared, other], timeout=WAIT, identity=[("user", "bob")])
        crowd = [Recorder() for _ in range(200)]
        for index, listener in enumerate(crowd):
            await hub.attach(listener, [channel_of(f"crowd{index % 40}")], timeout=WAIT)
        links = hub_links(client, hub)
        assert len(links) == 1  # every listener of the loop on one pub/sub connection
        assert int(links[0]["sub"]) == 1 + 2 + 40  # the control channel, shared, other, the crowd's 40

        hub.detach(first, [shared], identity=[("user", "ann")])
        assert await publish("shared", "still here") == 1
        assert (await second.next()).data == b"still here"
        assert first.deliveries.empty()

        hub.detach(second, [shared, other], identity=[("user", "bob")])
        for index, listener in enumerate(crowd):
            hub.detach(listener, [channel_of(f"crowd{index % 40}")])
        # Commands reach Redis in order: once a later SUBSCRIBE is confirmed, every UNSUBSCRIBE was answered.
        await hub.attach(Recorder(), [channel_of("later")], timeout=WAIT)
        assert numsub(client, shared, other, channel_of("crowd0")) == {shared: 0, other: 0, channel_of("crowd0"): 0}
        assert await publish("shared", "nobody") == 0
        assert hub.channels == [channel_of("later")]
        assert int(hub_links(client, hub)[0]["sub"]) == 2
        # Every table is back to one channel: nothing of the 202 listeners stays behind.
        assert hub.table_sizes() == {"listeners": 1, "ready": 1, "unconfirmed": 0, "identities": 0,
                                     "unsubscribing": 0}

    run(main)


def test_a_killed_link_is_reconnected_and_listeners_are_told_once_after_every_channel_is_confirmed(
    client: redis.Redis,
) -> None:
    channels = [channel_of(f"many{i}") for i in range(1200)]  # more than one SUBSCRIBE's worth (500)

    def seen_by_redis() -> dict[str, int]:  # called by the listener when told: what Redis holds at that moment
        observer = redis.Redis(port=client.connection_pool.connection_kwargs["port"])
        try:
            return numsub(observer, *channels)
        finally:
            observer.close()

    async def main(hub: AsyncioHub) -> None:
        listener, quiet = Recorder(on_reconnect=seen_by_redis), Recorder()
        await hub.attach(listener, channels, timeout=WAIT)
        await hub.attach(quiet, channels[:2], timeout=WAIT)
        assert await publish("many0", "before") == 1
        assert (await listener.next()).data == b"before"
        assert (await quiet.next()).data == b"before"

        [link] = hub_links(client, hub)
        client.client_kill_filter(_id=link["id"])
        notice, at_that_moment = await listener.notice()
        assert notice == "reconnected"
        assert set(at_that_moment.values()) == {1}  # told only once Redis confirmed all 1200 channels
        assert (await quiet.notice())[0] == "reconnected"
        assert hub.reconnects == 1
        assert len(hub_links(client, hub)) == 1
        assert await publish("many1199", "after") == 1
        assert (await listener.next()).data == b"after"
        assert await publish("many0", "to both") == 1
        assert (await quiet.next()).data == b"to both"
        assert listener.notices.empty() and quiet.notices.empty()  # exactly one notice each

    run(main)


@override_settings(WS4REDIS_HISTORY={"kept": {"size": 100, "ttl": 60}})
def test_after_a_reconnect_history_replays_what_the_dead_link_missed_and_nothing_twice(client: redis.Redis) -> None:
    from ws4redis.history import Recovery

    async def main(hub: AsyncioHub) -> None:
        name = channel_of("kept")
        listener = Recorder()
        await hub.attach(listener, [name], timeout=WAIT)
        recovery = Recovery([name])  # what a driver keeps per socket
        await asyncio.to_thread(recovery.start, get_connection())
        got: list[bytes] = []

        async def take(until: bytes) -> None:
            while True:
                delivery = await listener.next()
                if recovery.fresh(delivery.channel, delivery.id):
                    got.append(delivery.data)
                if delivery.data == until:
                    return

        assert await publish("kept", "m1") == 1
        await take(b"m1")
        [link] = hub_links(client, hub)
        client.client_kill_filter(_id=link["id"])
        publisher = RedisPublisher(facility="kept", broadcast=True)
        for number in range(2, 6):  # the loop is blocked meanwhile: the hub cannot have reconnected yet
            publisher.publish_message(f"m{number}")
        assert (await listener.notice())[0] == "reconnected"
        replayed, lost = await asyncio.to_thread(recovery.replay, get_connection(), dict(recovery.last))
        assert lost == []
        got.extend(data for _, _, data, _ in replayed)
        assert await publish("kept", "m6") == 1
        await take(b"m6")
        assert got == [f"m{number}".encode() for number in range(1, 7)]  # each once, in publish order

    run(main)


def test_a_silent_link_is_cut_by_the_keepalive_and_reconnected(client: redis.Redis,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio_hub, "PING_INTERVAL", 0.1)

    async def main(hub: AsyncioHub) -> None:
        listener = Recorder()
        await hub.attach(listener, [channel_of("silent")], timeout=WAIT)
        await asyncio.sleep(0.6)  # not synchronisation: six quiet intervals, answered PINGs keep a quiet link up
        assert hub.reconnects == 0 and listener.notices.empty()
        client.execute_command("CLIENT", "PAUSE", 1000, "ALL")  # Redis answers nothing for a second: no PONG
        assert (await listener.notice())[0] == "reconnected"  # cut after 3 silent intervals, reconnected after
        assert hub.reconnects == 1
        assert await publish("silent", "awake") == 1
        assert (await listener.next()).data == b"awake"

    run(main)


def test_presence_offline_of_a_dead_process_is_sent_by_the_hubs_sweeper(redis_server: RedisServer) -> None:
    from ws4redis import signals
    from ws4redis.presence_signals import online_tracker

    async def main(hub: AsyncioHub) -> None:
        loop = asyncio.get_running_loop()
        offline: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

        def record(sender: Any, *, user: str, facility: str, **kwargs: Any) -> None:  # in the sweeper's thread
            loop.call_soon_threadsafe(offline.put_nowait, (user, facility))

        signals.user_offline.connect(record)
        try:
            tracker = online_tracker(["aio:broadcast:desk"], user="erin", session_key=None)
            assert tracker is not None and tracker.connect(get_connection())  # a socket whose process then died
            await hub.attach(Recorder(), [channel_of("desk")], timeout=WAIT)  # the hub, and its sweeper, start
            assert await asyncio.wait_for(offline.get(), WAIT) == ("erin", "desk")
        finally:
            signals.user_offline.disconnect(record)

    # A prefix of its own (the uWSGI servers of other tests sweep "test:"); a ttl that is over at once.
    with override_settings(WS4REDIS_PRESENCE={"desk": {"ttl": 0.05}}, WS4REDIS_PRESENCE_GRACE=0.1,
                           WS4REDIS_PRESENCE_SWEEP=0.05, WS4REDIS_PREFIX="aio"):
        run(main)


@override_settings(WS4REDIS_PREFIX="aio")  # control messages of its own: other hubs of the session listen to "test:"
def test_revoke_and_drain_through_the_control_channel(client: redis.Redis) -> None:
    async def main(hub: AsyncioHub) -> None:
        ann, ann_other_session, bob = Recorder(), Recorder(), Recorder()
        await hub.attach(ann, [channel_of("a")], timeout=WAIT, identity=[("user", "ann"), ("session", "s1")])
        await hub.attach(ann_other_session, [channel_of("a"), channel_of("b")], timeout=WAIT,
                         identity=[("user", "ann"), ("session", "s2")])
        await hub.attach(bob, [channel_of("b")], timeout=WAIT, identity=[("user", "bob"), ("session", "s3")])

        await asyncio.to_thread(revoke, session="s2")
        assert await ann_other_session.notice() == "revoked"
        await asyncio.to_thread(revoke, user="ann")
        assert await ann.notice() == "revoked"
        assert await ann_other_session.notice() == "revoked"
        await asyncio.to_thread(drain, window=1.0, instance=instance_name() + "-elsewhere")  # not this instance
        await asyncio.to_thread(drain, window=1.0)
        for listener in (ann, ann_other_session, bob):  # control messages come in order: nothing else came before
            kind, delay = await listener.notice()
            assert kind == "shutdown" and 500 <= delay <= 1000
            assert listener.notices.empty()
        # A window that is no number of seconds still spreads the reconnects (it raised in the gevent hub).
        client.publish(control_channel(), json.dumps({"type": "drain", "window": "inf"}))
        kind, delay = await bob.notice()
        assert kind == "shutdown" and 500 <= delay <= 10_000

    run(main)


@override_settings(WS4REDIS_PREFIX="aio")  # control messages of its own: other hubs of the session listen to "test:"
def test_hostile_records_are_counted_and_never_cost_the_link(client: redis.Redis) -> None:
    async def main(hub: AsyncioHub) -> None:
        listener = Recorder()
        name = channel_of("hostile")
        await hub.attach(listener, [name], timeout=WAIT)
        before = bad_records()
        forged = REGISTRY.get_sample_value("ws4redis_messages_dropped_total", {"reason": "forged_probe"}) or 0.0
        junk = [
            wire.MAGIC + b"9t\nnext version",  # another envelope version
            wire.head(text=True) + b"\n\xff\xfe",  # text that is not UTF-8
            wire.head(text=True) + b"12-x\npayload",  # a malformed id
            wire.head(text=True, event=True) + b'\n{"type": "forged"}',  # an event that is none
        ]
        for data in junk:
            client.publish(name, data)
        for data in (b"not json", b"[1, 2]", b'{"type": "reboot"}', b"\xff" * 100):
            client.publish(control_channel(), data)
        client.publish(name, reach.PROBE_MARK + b"0" * 32 + b" forged")  # a probe that does not verify
        client.publish(name, b"--heartbeat--")  # WS4REDIS_HEARTBEAT of the test project: never forwarded
        client.publish(name, b"raw \xc3\xa9 from 0.6")  # no envelope: delivered as is, text by its content
        delivery = await listener.next()
        assert (delivery.data, delivery.text, delivery.id) == (b"raw \xc3\xa9 from 0.6", True, None)
        assert bad_records() - before == len(junk) + 4
        assert REGISTRY.get_sample_value("ws4redis_messages_dropped_total", {"reason": "forged_probe"}) == forged + 1
        assert hub.reconnects == 0 and listener.deliveries.empty() and listener.notices.empty()

    run(main)


def test_a_counted_publish_gets_the_sockets_of_this_loop(client: redis.Redis) -> None:
    async def main(hub: AsyncioHub) -> None:
        name = channel_of("counted")
        for _ in range(3):
            await hub.attach(Recorder(), [name], timeout=WAIT)
        result = await asyncio.to_thread(reach.publish_counted, get_connection(), [name], b"hi", expire=0,
                                         timeout=WAIT)
        assert (result.sockets, result.answered, result.expected) == (3, 1, 1)

    run(main)


def test_attach_raises_hub_unavailable_when_redis_does_not_confirm_and_leaves_nothing_behind() -> None:
    from tests.servers import free_port

    with override_settings(WS4REDIS_CONNECTION={"host": "127.0.0.1", "port": free_port()}):  # nothing listens

        async def main(hub: AsyncioHub) -> None:
            with pytest.raises(HubUnavailable):
                await hub.attach(Recorder(), [channel_of("x")], timeout=0.3, identity=[("user", "ann")])
            assert hub.table_sizes() == {"listeners": 0, "ready": 0, "unconfirmed": 0, "unsubscribing": 0,
                                         "identities": 0}

        run(main)


def test_one_hub_per_running_loop(redis_server: RedisServer) -> None:
    async def hub_of_this_loop() -> AsyncioHub:
        hub = get_asyncio_hub()
        assert get_asyncio_hub() is hub
        await hub.aclose()
        assert get_asyncio_hub() is not hub  # a closed hub is forgotten
        return hub

    assert asyncio.run(hub_of_this_loop()) is not asyncio.run(hub_of_this_loop())


# -- Sentinel ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    topology = SentinelGroup("aiomaster")
    yield topology
    topology.stop()


def test_sentinel_delivery_survives_a_failover(group: SentinelGroup) -> None:
    setting = {"sentinels": group.addresses, "service_name": group.service, "db": 0}
    with override_settings(WS4REDIS_CONNECTION=setting):
        reset_pool()

        async def main(hub: AsyncioHub) -> None:
            listener = Recorder()
            await hub.attach(listener, [channel_of("failover")], timeout=WAIT)
            assert await publish("failover", "before") == 1
            assert (await listener.next()).data == b"before"
            old = group.master_port()
            next(node for node in group.nodes if node.port == old).stop(signal.SIGKILL)
            await asyncio.to_thread(wait_until, lambda: group.master_port() != old, 30, what="a promoted replica")
            assert (await asyncio.wait_for(listener.notices.get(), 30))[0] == "reconnected"
            reset_pool()  # this process's publishing pool held connections to the dead master
            assert await publish("failover", "after") == 1
            assert (await listener.next()).data == b"after"

        try:
            run(main)
        finally:
            reset_pool()


# -- Redis Cluster -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterNodes]:
    nodes = ClusterNodes(masters=3, replicas=0)
    yield nodes
    nodes.stop()


def test_cluster_subscriptions_are_sharded_and_survive_a_killed_shard_link(cluster: ClusterNodes) -> None:
    facilities = [f"shard{i}" for i in range(12)]
    with override_settings(WS4REDIS_CONNECTION={"cluster_nodes": cluster.startup_nodes[:3]}):
        reset_pool()
        names = {facility: channel_of(facility) for facility in facilities}
        owners: dict[str, int] = {}  # channel -> port of the primary holding its sharded subscription

        async def main(hub: AsyncioHub) -> None:
            listener = Recorder()
            await hub.attach(listener, list(names.values()), timeout=WAIT)
            shards: dict[int, int] = {}
            for node in cluster.nodes:
                node_client = node.client()
                for name in names.values():
                    count = int(node_client.execute_command("PUBSUB", "SHARDNUMSUB", name)[1])
                    if count:
                        shards[node.port] = shards.get(node.port, 0) + count
                        owners[name] = node.port
                    assert node_client.pubsub_numsub(name)[0][1] == 0  # no classic subscription anywhere
                node_client.close()
            assert len(owners) == len(names) and len(shards) == 3  # each channel once, on its shard; every shard
            for facility in facilities:
                assert await publish(facility, f"to {facility}") == 1
            assert sorted([(await listener.next()).data for _ in facilities]) == sorted(
                f"to {facility}".encode() for facility in facilities)

            victim = next(node for node in cluster.nodes if node.port == owners[names[facilities[0]]])
            victim_client = victim.client()
            links = [c for c in victim_client.client_list() if c.get("name") == hub.name]
            assert links  # its shard link (and the control channel's, when this node is the default one)
            for link in links:
                victim_client.client_kill_filter(_id=link["id"])
            victim_client.close()
            assert (await listener.notice())[0] == "reconnected"
            for facility in facilities:
                assert await publish(facility, f"again {facility}") == 1
            assert sorted([(await listener.next()).data for _ in facilities]) == sorted(
                f"again {facility}".encode() for facility in facilities)
            assert listener.notices.empty()

            # A slot moves to another shard: Redis drops its sharded subscriptions (SUNSUBSCRIBE of its own); the
            # hub takes them up on the new owner and tells its listeners.
            moved = names[facilities[1]]
            target = next(node for node in cluster.nodes if node.port != owners[moved])
            target_id = target.client().execute_command("CLUSTER", "MYID")
            for node in sorted(cluster.nodes, key=lambda node: node is not target):  # the new owner first
                node_client = node.client()
                node_client.execute_command("CLUSTER", "SETSLOT", key_slot(moved.encode()), "NODE", target_id)
                node_client.close()
            assert (await listener.notice())[0] == "reconnected"
            target_client = target.client()
            assert int(target_client.execute_command("PUBSUB", "SHARDNUMSUB", moved)[1]) == 1
            target_client.close()
            assert await publish(facilities[1], "moved") == 1
            assert (await listener.next()).data == b"moved"

            # The control channel is classic pub/sub: a PUBLISH reaches every node, and the hub on one of them.
            revoked = Recorder()
            await hub.attach(revoked, [moved], timeout=WAIT, identity=[("user", "ann")])
            await asyncio.to_thread(revoke, user="ann")
            assert await revoked.notice() == "revoked"

        try:
            run(main)
        finally:
            reset_pool()


# -- the rules both hubs share (ws4redis.runtime.dispatch), on the gevent hub ------------------------------------
class _Told:
    """A gevent-hub listener that keeps its shutdown notices."""

    def __init__(self) -> None:
        self.shutdowns: list[int] = []

    def shutdown(self, reconnect_in_ms: int) -> None:
        self.shutdowns.append(reconnect_in_ms)


def test_the_gevent_hub_drains_over_a_window_that_is_no_number_and_counts_junk_control_messages() -> None:
    from ws4redis.hub import Hub

    hub = Hub()  # never started: _dispatch is what its reader calls for each message
    listener = _Told()
    hub._listeners["c"] = {listener}  # type: ignore[dict-item]
    before = bad_records()
    for window in ("inf", "nan", "-inf"):  # int(inf * 1000) raised before: nobody was drained
        hub._dispatch(hub.control_channel, json.dumps({"type": "drain", "window": window}).encode())
    assert len(listener.shutdowns) == 3 and all(500 <= delay <= 10_000 for delay in listener.shutdowns)
    hub._dispatch(hub.control_channel, b'{"type": "reboot"}')  # ignored without a trace before
    hub._dispatch(hub.control_channel, b"[]")
    assert bad_records() - before == 2
