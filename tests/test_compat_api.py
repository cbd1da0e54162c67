"""The public names of django-websocket-redis 0.6.0 and of its last code, with their shapes, against a real Redis.

Each test is a call as a 0.6 project writes it: signatures, defaults, return values, the types of attributes its
docs and example touch, exceptions and module paths. Deliberate differences are in docs/migration.md.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from django.core.exceptions import PermissionDenied
from django.http import BadHeaderError
from django.test import RequestFactory, override_settings

from tests.servers import RedisServer
from ws4redis import wire
from ws4redis.audience import MEMBEROF_KEY


@pytest.fixture
def listen(redis_server: RedisServer) -> Iterator[Callable[..., Any]]:
    """Subscribe a plain redis-py client to channels (a stand-in receiver); closed whatever the test did."""
    opened: list[Any] = []

    def subscribe(*channels: str) -> Any:
        pubsub = redis_server.client().pubsub()
        opened.append(pubsub)
        pubsub.subscribe(*channels)
        for _ in channels:
            assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        return pubsub

    yield subscribe
    for pubsub in opened:
        pubsub.close()


def _received(pubsub: Any) -> bytes:
    message = pubsub.get_message(timeout=2)
    assert message is not None and message["type"] == "message", message
    record = wire.decode(bytes(message["data"]))  # what a hub hands its sockets: the payload behind the envelope
    assert isinstance(record, wire.Record), record
    return record.payload


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("ws4redis.redis_store", ["RedisMessage", "RedisStore", "SELF"]),
        ("ws4redis.publisher", ["RedisPublisher"]),
        ("ws4redis.subscriber", ["RedisSubscriber"]),
        ("ws4redis.context_processors", ["default"]),
        ("ws4redis.uwsgi_runserver", ["uWSGIWebsocketServer"]),
        ("ws4redis.django_runserver", ["application"]),
        ("ws4redis.models", ["store_groups_in_session"]),
        ("ws4redis.exceptions", ["WebSocketError", "FrameTooLargeException", "HandshakeError", "UpgradeRequiredError"]),
        ("ws4redis.settings", ["WEBSOCKET_URL", "WS4REDIS_CONNECTION", "WS4REDIS_EXPIRE", "WS4REDIS_PREFIX",
                               "WS4REDIS_SUBSCRIBER", "WS4REDIS_HEARTBEAT", "WS4REDIS_ALLOWED_CHANNELS",
                               "WS4REDIS_PROCESS_REQUEST"]),
    ],
)
def test_the_original_module_paths_import(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    for name in names:
        assert hasattr(loaded, name), f"{module}.{name}"


def test_pipeline_publish_message_has_the_last_codes_signature(
    redis_server: RedisServer, listen: Callable[..., Any]
) -> None:
    from ws4redis.publisher import RedisPublisher
    from ws4redis.redis_store import RedisMessage

    parameters = list(inspect.signature(RedisPublisher.pipeline_publish_message).parameters.values())[1:4]
    assert [(p.name, p.default) for p in parameters] == [
        ("message", inspect.Parameter.empty), ("expire", None), ("transaction", True)
    ]
    pubsub = listen("test:broadcast:f", "test:user:ann:f")
    publisher = RedisPublisher(facility="f", broadcast=True, users=["ann"])
    assert publisher.pipeline_publish_message(RedisMessage("in a transaction"), 30, True) == 2  # receivers
    assert {_received(pubsub), _received(pubsub)} == {b"in a transaction"}
    client = redis_server.client()
    assert client.mget("test:broadcast:f", "test:user:ann:f") == [b"in a transaction"] * 2  # kept 30 s
    assert 0 < client.ttl("test:user:ann:f") <= 30
    assert publisher.pipeline_publish_message("in a plain pipeline", transaction=False) == 2
    assert {_received(pubsub), _received(pubsub)} == {b"in a plain pipeline"}
    client.close()


def test_publish_message_returns_receivers_and_refuses_what_is_no_message(listen: Callable[..., Any]) -> None:
    from ws4redis.publisher import RedisPublisher
    from ws4redis.redis_store import RedisMessage

    pubsub = listen("test:broadcast:f")
    publisher = RedisPublisher(facility="f", broadcast=True)
    assert publisher.publish_message(RedisMessage("bytes"), 10) == 1
    assert publisher.publish_message("a str, as 0.6's docs showed") == 1
    assert [_received(pubsub), _received(pubsub)] == [b"bytes", b"a str, as 0.6's docs showed"]
    with pytest.raises(ValueError, match="RedisMessage"):
        publisher.publish_message(42)  # type: ignore[arg-type]
    assert publisher.publish_message(None) == 0


@override_settings(WS4REDIS_HEARTBEAT="--heartbeat--")
def test_redis_message() -> None:
    from ws4redis.redis_store import RedisMessage

    assert isinstance(RedisMessage("text"), bytes) and RedisMessage("text") == b"text"
    assert RedisMessage("--heartbeat--") is None and RedisMessage(b"--heartbeat--") is None
    assert RedisMessage([b"message", b"channel", b"payload"]) == b"payload"  # a raw pub/sub reply
    assert RedisMessage(42) is None  # type: ignore[arg-type]  # as the original: not a message


def test_store_attributes_have_the_original_types(redis_server: RedisServer) -> None:
    from ws4redis.publisher import RedisPublisher
    from ws4redis.redis_store import RedisStore

    publisher = RedisPublisher(facility="f", broadcast=True)
    assert publisher._publishers == {"test:broadcast:f"}  # a set, as 0.6's tests compare it
    assert RedisPublisher(facility="f", users=["john"])._publishers == {"test:user:john:f"}
    assert publisher._expire == 0 and isinstance(publisher._expire, int)  # WS4REDIS_EXPIRE of the test settings
    publisher._expire = 7  # an instance of the original could change its expiry
    publisher.publish_message("kept for 7 s")
    client = redis_server.client()
    assert 0 < client.ttl("test:broadcast:f") <= 7
    client.close()
    store = RedisStore(redis.Redis(port=redis_server.port))  # the connection positional, as the original
    assert store._publishers == set() and store.get_prefix() == "test:"
    assert store._get_message_channels(facility="f", broadcast=True, users=["a"]) == [
        "test:broadcast:f", "test:user:a:f"
    ]


def test_fetch_message_looks_up_session_user_group_then_broadcast(redis_server: RedisServer) -> None:
    from ws4redis.publisher import RedisPublisher
    from ws4redis.redis_store import SELF

    groups = {MEMBEROF_KEY: ["red"]}
    session = SimpleNamespace(session_key="k" * 32, get=lambda key, default=None: groups.get(key, default))
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, get_username=lambda: "ann"), session=session)
    fetch = RedisPublisher().fetch_message
    assert fetch(request, "f") is None
    RedisPublisher(facility="f", broadcast=True).publish_message("b", expire=60)
    assert fetch(request, "f") == b"b"
    RedisPublisher(facility="f", groups=["red"]).publish_message("g", expire=60)
    assert fetch(request, "f") == b"g"
    RedisPublisher(facility="f", users=[SELF], request=request).publish_message("u", expire=60)
    assert fetch(request, "f") == b"u"
    RedisPublisher(facility="f", sessions=[SELF], request=request).publish_message("s", expire=60)
    assert fetch(request, "f") == b"s"
    assert fetch(request, "f", "broadcast") == b"b" and fetch(request, "f", "group") == b"g"


@override_settings(WS4REDIS_EXPIRE=60)
def test_subscriber_of_the_original(redis_server: RedisServer) -> None:
    from ws4redis.publisher import RedisPublisher
    from ws4redis.subscriber import RedisSubscriber

    assert set(RedisSubscriber.subscription_channels) == {
        "subscribe-session", "subscribe-group", "subscribe-user", "subscribe-broadcast"
    }
    assert set(RedisSubscriber.publish_channels) == {
        "publish-session", "publish-group", "publish-user", "publish-broadcast"
    }
    request = RequestFactory().get("/ws/f")
    request.user = SimpleNamespace(is_authenticated=False)  # type: ignore[assignment]
    request.session = None  # type: ignore[assignment]
    subscriber = RedisSubscriber(redis.Redis(port=redis_server.port))
    subscriber.set_pubsub_channels(request, ["subscribe-broadcast", "publish-broadcast"])
    assert subscriber._publishers == {"test:broadcast:f"}
    RedisPublisher(facility="f", broadcast=True).publish_message("kept", expire=60)
    sent: list[bytes] = []
    subscriber.send_persited_messages(SimpleNamespace(send=sent.append))  # the original's spelling
    assert sent == [b"kept"]


def test_original_exceptions_are_what_ws4redis_raises() -> None:
    from ws4redis import exceptions

    assert issubclass(exceptions.UpgradeRequiredError, exceptions.HandshakeError)
    assert exceptions.UpgradeRequiredError().status == 426
    assert issubclass(exceptions.FrameTooLargeException, exceptions.WebSocketError)
    assert not issubclass(exceptions.HandshakeError, (BadHeaderError, PermissionDenied))  # deliberate: see docs


def test_assigning_to_the_settings_module_overrides_as_in_the_original() -> None:
    from ws4redis import settings

    with override_settings(WS4REDIS_EXPIRE=10):
        assert settings.WS4REDIS_EXPIRE == 10
        settings.WS4REDIS_EXPIRE = 3  # type: ignore[attr-defined]  # what 0.6's own tests did
        try:
            assert settings.get("WS4REDIS_EXPIRE") == 3
        finally:
            del settings.WS4REDIS_EXPIRE  # type: ignore[attr-defined]
        assert settings.get("WS4REDIS_EXPIRE") == 10


@pytest.mark.parametrize(
    ("offered", "agreed"),
    [
        ("", None),
        ("unittestprotocol", "unittestprotocol"),  # the original agreed to the first offered subprotocol
        ("chat, superchat", "chat"),
        ("chat, ws4redis.v2", "ws4redis.v2"),  # the one this server speaks wins
        ("ws4redis.v3", None),  # never claim a ws4redis protocol this server does not speak
        ("a(b)", None),  # not an HTTP token
        ("x" * 65, None),
    ],
)
def test_subprotocol_agreed_as_the_original_did(offered: str, agreed: str | None) -> None:
    from ws4redis.auth import choose_subprotocol

    assert choose_subprotocol({"HTTP_SEC_WEBSOCKET_PROTOCOL": offered}) == agreed
