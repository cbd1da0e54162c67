"""``Config``: the settings read once into a frozen value shared by every socket, reset on ``setting_changed``; and
the core's purity (no gevent, asyncio, redis, Django or uWSGI import)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from django.test import override_settings

from ws4redis import configuration, settings
from ws4redis.core import Config


def test_settings_are_converted_once_into_typed_fields() -> None:
    values = {**settings.DEFAULTS, "WS4REDIS_QUEUE_BYTES": "2048", "WS4REDIS_PUBLISH_RATE": 0,
              "WS4REDIS_SLOW_CONSUMER": "drop-oldest", "WS4REDIS_RESUME_WAIT": None, "WS4REDIS_EXPIRE": None,
              "WS4REDIS_MAX_CONNECTIONS_PER_USER": "3"}
    config = Config.from_settings(values.__getitem__)
    assert config.queue_bytes == 2048 and config.publish_rate is None and config.drop_oldest
    assert config.resume_wait == 0.0 and config.expire == 0 and config.max_connections_per_user == 3


def test_a_config_is_frozen_and_slotted() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.queue_bytes = 1  # type: ignore[misc]
    assert not hasattr(config, "__dict__")


def test_one_config_is_shared_and_override_settings_takes_effect_at_once() -> None:
    shared = configuration.current()
    assert configuration.current() is shared
    with override_settings(WS4REDIS_QUEUE_BYTES=1234):
        assert configuration.current().queue_bytes == 1234
    assert configuration.current().queue_bytes == settings.get("WS4REDIS_QUEUE_BYTES")


def test_an_assignment_to_the_settings_module_is_honoured() -> None:
    settings.WS4REDIS_QUEUE_BYTES = 4321  # type: ignore[attr-defined]
    try:
        assert configuration.current().queue_bytes == 4321
    finally:
        del settings.WS4REDIS_QUEUE_BYTES  # type: ignore[attr-defined]
    assert configuration.current().queue_bytes == settings.get("WS4REDIS_QUEUE_BYTES")


def test_the_core_imports_no_io_framework() -> None:
    code = (
        "import sys, ws4redis.core, ws4redis.core.session, ws4redis.core.protocol, ws4redis.protocol;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'gevent','asyncio','redis','django','uwsgi'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
