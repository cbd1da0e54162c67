"""Redis Sentinel: a master, a replica and three sentinels on loopback; the master is killed mid-session.

The hubs and the publishing pools (in the uWSGI workers and in this process) ask the sentinels for the master on
every connect, so after the failover they reach the promoted replica: websockets stay open and messages published
after the failover arrive.
"""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from django.core.management import call_command
from django.test import override_settings

from tests.conftest import assert_silent, connect
from tests.redis_topologies import SentinelGroup, hub_pids, wait_until
from tests.servers import UwsgiServer
from ws4redis import settings as ws4redis_settings
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import get_connection, new_client, reset_pool

CHANNEL = "test:broadcast:failover"


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    topology = SentinelGroup("mymaster")
    yield topology
    topology.stop()


def sentinel_setting(group: SentinelGroup) -> dict[str, Any]:
    return {"sentinels": group.addresses, "service_name": group.service, "db": 0}


@pytest.fixture(scope="module")
def server(group: SentinelGroup, django_db_setup: Any, django_db_blocker: Any) -> Iterator[UwsgiServer]:
    uwsgi = UwsgiServer(processes=2, overrides={
        "WS4REDIS_CONNECTION": sentinel_setting(group), "WS4REDIS_POLICY": "permissive",
    })
    wait_until(lambda: len(uwsgi.workers()) == 2, what="two workers")
    yield uwsgi
    uwsgi.stop()


@pytest.fixture
def publisher_settings(group: SentinelGroup) -> Iterator[None]:
    """This process publishes through the sentinels too (its pool is rebuilt for the setting, and after)."""
    with override_settings(WS4REDIS_CONNECTION=sentinel_setting(group)):
        reset_pool()
        yield
    reset_pool()


def test_url_form_is_the_same_setting() -> None:
    with override_settings(WS4REDIS_CONNECTION="redis+sentinel://:secret@10.0.0.1:26379,10.0.0.2/mymaster/2"):
        assert ws4redis_settings.connection_kwargs() == {
            "sentinels": [("10.0.0.1", 26379), ("10.0.0.2", 26379)],
            "service_name": "mymaster",
            "db": 2,
            "password": "secret",
        }


def test_clients_follow_the_master_through_a_failover(group: SentinelGroup, server: UwsgiServer,
                                                      publisher_settings: None) -> None:
    master = group.master
    assert get_connection().connection_pool.get_master_address()[1] == master.port  # type: ignore[attr-defined]
    client = master.client()
    sockets: list[websocket.WebSocket] = []
    while client.pubsub_numsub(CHANNEL)[0][1] < 2:  # sockets on both workers (each hub subscribed)
        assert len(sockets) < 200, "sockets stayed on one worker"
        sockets.extend(connect(server, "/ws/failover?subscribe-broadcast") for _ in range(10))
    assert sorted(p for p in hub_pids(client) if p in server.workers()) == sorted(server.workers())
    client.close()
    talker = connect(server, "/ws/failover?publish-broadcast")  # publishes through a worker's pool

    publisher = RedisPublisher(facility="failover", broadcast=True)
    assert publisher.publish_message("before") == 2
    talker.send("client before")
    for ws in sockets:
        assert [ws.recv(), ws.recv()] == ["before", "client before"]

    master.stop(signal.SIGKILL)  # the master dies without a word; only its pid is ours to kill
    wait_until(lambda: group.master_port() == group.replica.port, 30, what="sentinels promoted the replica")
    promoted = group.replica.client()
    wait_until(lambda: promoted.pubsub_numsub(CHANNEL)[0][1] == 2, 30, what="both hubs resubscribed on the new master")
    assert sorted(p for p in hub_pids(promoted) if p in server.workers()) == sorted(server.workers())
    promoted.close()

    assert publisher.publish_message("after") == 2  # this process's pool found the new master by itself
    talker.send("client after")  # and so did the worker's
    for i, ws in enumerate(sockets):
        assert [ws.recv(), ws.recv()] == ["after", "client after"], i  # the same sockets: none was closed
    assert_silent(sockets[0])


def test_a_new_hub_connection_asks_the_sentinels(group: SentinelGroup, publisher_settings: None) -> None:
    client = new_client()
    try:
        assert client.ping()
        assert client.connection_pool.get_master_address() == ("127.0.0.1", group.master_port())  # type: ignore[attr-defined]
    finally:
        client.close()
    out = io.StringIO()
    call_command("ws4redis_status", stdout=out)  # its Redis part names the current master
    assert f"redis 127.0.0.1:{group.master_port()}" in out.getvalue()
