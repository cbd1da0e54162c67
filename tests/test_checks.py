"""Settings are validated at start-up (``ws4redis.checks``): each rule, ``manage.py check``, and a server's start."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tests.gevent_servers import project_env
from tests.servers import ROOT
from ws4redis import checks
from ws4redis.settings import DEFAULTS


def _hook(*args: Any) -> None:
    """A callable hook, as a setting may hold one."""


# Setting -> (values it accepts, values it refuses, words the error must contain: what it accepts).
CASES: dict[str, tuple[list[Any], list[Any], str]] = {
    "WEBSOCKET_URL": (["/ws/", "/a/b/"], ["ws/", "/ws", None, 3], "starts and ends with '/'"),
    "WS4REDIS_CONNECTION": (
        [{"host": "127.0.0.1", "port": 6379}, "redis://localhost:6379/0", "unix:///tmp/r.sock"],
        ["http://localhost", 6379, ["localhost"]],
        "must be a dict of redis-py arguments or a redis://",
    ),
    "WS4REDIS_EXPIRE": ([0, 3600, None], [-1, "3600", 1.5, True], "an integer >= 0"),
    "WS4REDIS_PREFIX": ([None, "p"], [1, b"p"], "a string"),
    "WS4REDIS_SUBSCRIBER": (
        ["ws4redis.subscriber.RedisSubscriber", _hook], ["ws4redis.subscriber.Nope", None],
        "a callable or the dotted path",
    ),
    "WS4REDIS_HEARTBEAT": ([None, "--hb--"], [42], "a string"),
    "WS4REDIS_ALLOWED_CHANNELS": (
        [None, _hook, "tests.test_checks._hook"], ["tests.test_checks.nope", 3],
        "a callable or the dotted path of one, or None",
    ),
    "WS4REDIS_PROCESS_REQUEST": ([None, "tests.test_checks._hook"], ["no.such.module.f"], "does not import"),
    "WS4REDIS_ALLOWED_ORIGINS": ([None, [], ["*"], ("https://a.example",)], ["*", [1]], "list of origins"),
    "WS4REDIS_POLICY": (["strict", "permissive"], ["Strict", "open", None], "'strict', 'permissive'"),
    "WS4REDIS_MAX_FACILITY_LENGTH": ([1, 100], [0, -5, "100", 10.5], "an integer > 0"),
    "WS4REDIS_MAX_MESSAGE_SIZE": ([65536], [0, None], "an integer > 0"),
    "WS4REDIS_QUEUE_BYTES": ([1048576], [0, "1M"], "an integer > 0"),
    "WS4REDIS_POOL_SIZE": ([32], [0, 2.5], "an integer > 0"),
    "WS4REDIS_SUBSCRIBE_TIMEOUT": ([5.0, 1], [0, -1, "5"], "a number > 0"),
    "WS4REDIS_WAKE_INTERVAL": ([10.0], [0.0, None], "a number > 0"),
    "WS4REDIS_INSTANCE": ([None, "eu-1"], [7], "a string"),
    "WS4REDIS_PING_INTERVAL": ([20.0, None], [0, "20"], "a number > 0"),
    "WS4REDIS_PING_TIMEOUT": ([20, None], [-1], "a number > 0"),
    "WS4REDIS_HISTORY": (
        [{}, None, {"chat": {"size": 10, "ttl": 60}, "feed-*": {}}],
        [[], {"chat": {"sise": 10}}, {"chat": {"size": 0}}, {"chat": {"ttl": "1h"}}, {"chat": 10}, {"": {}}],
        "expected {facility or pattern: {'size', 'ttl'}}",
    ),
    "WS4REDIS_RESUME_WAIT": ([0, 2.0, None], [-1, "2"], "a number >= 0"),
    "WS4REDIS_PRESENCE": (
        [{}, {"room": {"ttl": 30, "events": True}}, {"room": {"grace": 0}}],
        [{"room": {"ttl": 0}}, {"room": {"events": "yes"}}, {"room": {"tll": 30}}, {"room": {"grace": -1}}],
        "expected {facility or pattern: {'ttl', 'events', 'grace'}}",
    ),
    "WS4REDIS_PRESENCE_GRACE": ([0, 10.0, 2], [-1, "10", None], "a number >= 0"),
    "WS4REDIS_PRESENCE_SWEEP": ([1.0, 0.1], [0, None, "1"], "a number > 0"),
    "WS4REDIS_PRESENCE_SIGNAL_QUEUE": ([1000, 1], [0, 10.5, None], "an integer > 0"),
    "WS4REDIS_HOOKS": (
        [{}, {"*": {"connect": "tests.test_checks._hook", "message": _hook}}],
        [{"chat": {"connect": "tests.test_checks.missing"}}, {"chat": {"join": "tests.test_checks._hook"}}],
        "expected {facility or pattern: {'connect', 'message', 'disconnect'}}",
    ),
    "WS4REDIS_HOOK_TIMEOUT": ([5.0, None], [0], "a number > 0"),
    "WS4REDIS_SLOW_CONSUMER": (
        ["close", "drop-oldest"], ["drop_oldest", "drop-newest", None], "'close', 'drop-oldest'"
    ),
    "WS4REDIS_PUBLISH_RATE": ([20.0, None, 1], [0, "fast"], "a number > 0"),
    "WS4REDIS_PUBLISH_BURST": ([40, 1, 2.5], [0, None], "a number >= 1"),
    "WS4REDIS_MAX_CONNECTIONS_PER_USER": ([None, 3], [0, 1.5], "an integer > 0"),
    "WS4REDIS_MAX_SUBSCRIPTIONS": ([None, 100], [0, "100"], "an integer > 0"),
    "WS4REDIS_CONTROL_RATE": ([10.0, None, 1], [0, "fast"], "a number > 0"),
    "WS4REDIS_CONTROL_BURST": ([50, 1], [0, None], "a number >= 1"),
    "WS4REDIS_SIGNED_STREAMS": ([(), ["incident-*", "board"]], ["incident-*", [""], [3]], "fnmatch patterns"),
    "WS4REDIS_HANDSHAKE_CONCURRENCY": ([0, 1, 64], [-1, 2.5, "64", None, True], "an integer >= 0"),
}


def test_every_setting_has_a_rule_and_a_test() -> None:
    assert set(checks.RULES) == set(DEFAULTS) == set(CASES)


def test_the_defaults_pass() -> None:
    assert checks.check_settings() == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_rule(name: str) -> None:
    good, bad, accepted = CASES[name]
    for value in good:
        with override_settings(**{name: value}):
            assert checks.check_settings() == [], (name, value)
    for value in bad:
        with override_settings(**{name: value}):
            errors = checks.check_settings()
        assert [e.id for e in errors] == [checks.IDS[name]], (name, value, errors)
        message = errors[0].msg
        assert message.startswith(f"{name} = {value!r} "), message  # names the setting and the value found
        assert accepted in message, (message, accepted)  # and what it accepts


def test_the_issue_case_is_an_error_not_close() -> None:
    with override_settings(WS4REDIS_SLOW_CONSUMER="drop_oldest"):
        (error,) = checks.check_settings()
        with pytest.raises(ImproperlyConfigured, match="WS4REDIS_SLOW_CONSUMER = 'drop_oldest' must be one of"):
            checks.raise_if_invalid()
    assert error.is_serious()


def _manage(args: list[str], overrides: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args], env=project_env(overrides), cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )


def test_manage_py_check_reports_the_setting_and_what_it_accepts() -> None:
    done = _manage(["check"], {"WS4REDIS_SLOW_CONSUMER": "drop_oldest", "WS4REDIS_POLICY": "open"})
    assert done.returncode != 0
    assert "WS4REDIS_SLOW_CONSUMER = 'drop_oldest' must be one of 'close', 'drop-oldest'" in done.stderr
    assert "WS4REDIS_POLICY = 'open' must be one of 'strict', 'permissive'" in done.stderr
    assert _manage(["check"], {}).returncode == 0


def test_the_websocket_server_refuses_to_start_with_a_broken_setting() -> None:
    done = _manage(["runwebsocket", "--bind", "127.0.0.1:0"], {"WS4REDIS_HISTORY": {"chat": {"sise": 10}}})
    assert done.returncode != 0
    expected = "WS4REDIS_HISTORY = {'chat': {'sise': 10}} ['chat'] has an unknown key 'sise'; expected"
    assert expected in done.stdout + done.stderr
