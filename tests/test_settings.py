"""Settings are read lazily, under the original names, and bad hooks fail loudly."""

from __future__ import annotations

import importlib

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from ws4redis import settings


def test_override_settings_is_seen() -> None:
    with override_settings(WS4REDIS_EXPIRE=7):
        assert settings.WS4REDIS_EXPIRE == 7
    assert settings.get("WS4REDIS_SUBSCRIBER") == "ws4redis.subscriber.RedisSubscriber"


def test_bad_dotted_path_raises_improperly_configured() -> None:
    with override_settings(WS4REDIS_ALLOWED_CHANNELS="no.such.module.hook"):
        with pytest.raises(ImproperlyConfigured, match="WS4REDIS_ALLOWED_CHANNELS"):
            settings.hook("WS4REDIS_ALLOWED_CHANNELS")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"host": "h", "port": 1, "db": 2, "password": None}, {"host": "h", "port": 1, "db": 2, "password": None}),
        ("redis://:pw@example.test:6380/3", {"host": "example.test", "port": 6380, "db": 3, "password": "pw"}),
        ("rediss://u:p@h", {"host": "h", "port": 6379, "ssl": True, "username": "u", "password": "p"}),
        ("unix:///run/redis.sock?db=4", {"unix_socket_path": "/run/redis.sock", "db": 4}),
    ],
)
def test_connection_setting_as_dict_or_url(value: object, expected: dict[str, object]) -> None:
    with override_settings(WS4REDIS_CONNECTION=value):
        assert settings.connection_kwargs() == expected


def test_bad_connection_url() -> None:
    with override_settings(WS4REDIS_CONNECTION="http://nope"):
        with pytest.raises(ImproperlyConfigured):
            settings.connection_kwargs()


@pytest.mark.parametrize(
    "module",
    ["ws4redis.redis_store", "ws4redis.publisher", "ws4redis.subscriber", "ws4redis.uwsgi_runserver",
     "ws4redis.context_processors", "ws4redis.settings"],
)
def test_original_module_paths_import(module: str) -> None:
    importlib.import_module(module)


def test_context_processor(rf: pytest.FixtureRequest) -> None:
    from ws4redis.context_processors import default

    with override_settings(ALLOWED_HOSTS=["example.com"]):
        context = default(rf.get("/", secure=True, HTTP_HOST="example.com"))  # type: ignore[attr-defined]
    assert context["WEBSOCKET_URI"] == "wss://example.com/ws/"
    assert context["WS4REDIS_HEARTBEAT"] == '"--heartbeat--"'
    with override_settings(WS4REDIS_HEARTBEAT=None, ALLOWED_HOSTS=["example.com"]):
        plain = default(rf.get("/", HTTP_HOST="example.com"))  # type: ignore[attr-defined]
    assert plain["WEBSOCKET_URI"] == "ws://example.com/ws/"
    assert plain["WS4REDIS_HEARTBEAT"] == "null"
