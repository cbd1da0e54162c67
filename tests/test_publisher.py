"""RedisPublisher and RedisMessage against a real Redis."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import redis
from django.test import override_settings

from tests.servers import RedisServer
from ws4redis.audience import MEMBEROF_KEY
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import SELF, RedisMessage


class CountingConnection(redis.Connection):
    """A real connection that counts how many times it writes to Redis (round trips)."""

    writes = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        super().send_packed_command(command, check_health)


def test_one_round_trip_for_several_audiences(redis_server: RedisServer) -> None:
    pool = redis.ConnectionPool(connection_class=CountingConnection, host="127.0.0.1", port=redis_server.port)
    client = redis.Redis(connection_pool=pool)
    client.ping()
    CountingConnection.writes = 0
    publisher = RedisPublisher(connection=client, facility="f", broadcast=True, users=["a", "b"], groups=["g"],
                               sessions=["s"])
    pubsub = redis_server.client().pubsub()
    pubsub.subscribe(*publisher.channels)
    for _ in publisher.channels:
        pubsub.get_message(timeout=1)
    assert publisher.publish_message(RedisMessage("hi"), expire=30) == 5
    assert CountingConnection.writes == 1
    got = {pubsub.get_message(timeout=1)["channel"].decode() for _ in publisher.channels}
    assert got == {"test:broadcast:f", "test:user:a:f", "test:user:b:f", "test:group:g:f", "test:session:s:f"}
    assert redis_server.client().get("test:user:b:f") == b"hi"
    pubsub.close()
    client.close()


def test_str_and_bytes_accepted_and_heartbeat_never_published(redis_server: RedisServer) -> None:
    publisher = RedisPublisher(facility="f", broadcast=True)
    store = redis_server.client()
    publisher.publish_message("plain str", expire=10)
    assert store.get("test:broadcast:f") == b"plain str"
    publisher.publish_message(b"\xff\x00 bytes", expire=10)
    assert store.get("test:broadcast:f") == b"\xff\x00 bytes"
    assert RedisMessage("--heartbeat--") is None
    assert publisher.publish_message("--heartbeat--", expire=10) == 0
    assert store.get("test:broadcast:f") == b"\xff\x00 bytes"
    store.close()


def test_expire_zero_keeps_nothing(redis_server: RedisServer) -> None:
    RedisPublisher(facility="f", broadcast=True).publish_message("x", expire=0)
    with override_settings(WS4REDIS_EXPIRE=0):
        RedisPublisher(facility="g", broadcast=True).publish_message("y")
    store = redis_server.client()
    assert store.exists("test:broadcast:f", "test:broadcast:g") == 0
    store.close()


def test_fetch_message_order_session_user_group_broadcast(redis_server: RedisServer) -> None:
    class Session(dict):
        session_key = "k1"

    request = SimpleNamespace(
        user=SimpleNamespace(is_authenticated=True, get_username=lambda: "ann"),
        session=Session({MEMBEROF_KEY: ["red"]}),
    )
    RedisPublisher(facility="f", broadcast=True).publish_message("b", expire=60)
    assert RedisPublisher().fetch_message(request, "f") == b"b"
    RedisPublisher(facility="f", groups=["red"]).publish_message("g", expire=60)
    assert RedisPublisher().fetch_message(request, "f") == b"g"
    RedisPublisher(facility="f", users=[SELF], request=request).publish_message("u", expire=60)
    assert RedisPublisher().fetch_message(request, "f") == b"u"
    RedisPublisher(facility="f", sessions=[SELF], request=request).publish_message("s", expire=60)
    assert RedisPublisher().fetch_message(request, "f") == b"s"
    assert RedisPublisher().fetch_message(request, "f", audience="broadcast") == b"b"
    assert RedisPublisher().fetch_message(request, "other") is None


def test_pipeline_publish_message_batches_with_the_callers_pipeline(redis_server: RedisServer) -> None:
    store = redis_server.client()
    pipe = store.pipeline(transaction=True)
    pipe.set("unrelated", "1")
    RedisPublisher(facility="a", broadcast=True).pipeline_publish_message("one", pipeline=pipe, expire=5)
    RedisPublisher(facility="b", users=["x"]).pipeline_publish_message("two", pipeline=pipe, expire=5)
    assert store.get("test:broadcast:a") is None  # nothing happens before the caller executes
    pipe.execute()
    assert store.mget("test:broadcast:a", "test:user:x:b", "unrelated") == [b"one", b"two", b"1"]
    store.close()


def test_bad_audience_type() -> None:
    with pytest.raises(ValueError):
        RedisPublisher(facility="f", groups=3.5)
