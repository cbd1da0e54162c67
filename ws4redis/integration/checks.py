"""System checks of the ws4redis settings: a wrong value is an error at start-up, never a silent default.

Settings are read when used (``ws4redis.settings``), so without these a misspelt value showed only in behaviour: a
``WS4REDIS_SLOW_CONSUMER = "drop_oldest"`` meant "close", a ``WS4REDIS_HISTORY`` entry with ``"sise"`` kept the
default window. Each setting with a closed set of values or a type has a rule here; ``manage.py check`` (and
``runserver``) report every broken one, naming the setting and what it accepts, and the websocket servers refuse to
start serving (``raise_if_invalid``, called when the websocket application is built).

The rules are values (a table of checker functions), so a test can go through every one of them.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ws4redis import settings

__all__ = ["RULES", "check_settings", "raise_if_invalid"]

#: The tag of these checks (``manage.py check --tag ws4redis``).
TAG = "ws4redis"

Rule = Callable[[Any], "str | None"]  # a value -> what is wrong with it, or None


def _choice(*allowed: str) -> Rule:
    def rule(value: Any) -> str | None:
        if value in allowed:
            return None
        return f"must be one of {', '.join(repr(a) for a in allowed)}"

    return rule


def _number(*, integer: bool = False, minimum: float = 0, above: bool = True, none: bool = False) -> Rule:
    """A number (an ``int`` where ``integer``) greater than ``minimum`` (at least, where not ``above``)."""
    kind = "an integer" if integer else "a number"
    bound = f"{'>' if above else '>='} {minimum:g}"
    wanted = f"{kind} {bound}" + (", or None" if none else "")

    def rule(value: Any) -> str | None:
        if value is None and none:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
            return f"must be {wanted}"
        if value < minimum or (above and value == minimum):
            return f"must be {wanted}"
        return None

    return rule


def _text(*, none: bool = True) -> Rule:
    def rule(value: Any) -> str | None:
        if isinstance(value, str) or (value is None and none):
            return None
        return "must be a string" + (" or None" if none else "")

    return rule


def _url_prefix(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("/") and value.endswith("/"):
        return None
    return "must be a path that starts and ends with '/', such as '/ws/'"


def _importable(*, none: bool) -> Rule:
    """A callable, or the dotted path of one that imports (``None`` too where allowed)."""

    def rule(value: Any) -> str | None:
        if (value is None and none) or callable(value):
            return None
        wanted = "must be a callable or the dotted path of one" + (", or None" if none else "")
        if not isinstance(value, str):
            return wanted
        try:
            import_string(value)
        except ImportError as exc:
            return f"{wanted}: it does not import ({exc})"
        return None

    return rule


def _origins(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(o, str) for o in value):
        return None
    return "must be None or a list of origins such as ['https://app.example.com'] (['*']: any origin)"


def _connection(value: Any) -> str | None:
    wanted = "must be a dict of redis-py arguments or a redis://, rediss://, unix:// (+sentinel, +cluster) URL"
    if not isinstance(value, (dict, str)):
        return wanted
    try:
        settings.connection_kwargs()
    except (ImproperlyConfigured, ValueError) as exc:
        return f"{wanted}: {exc}"
    return None


def _per_facility(fields: Mapping[str, Rule]) -> Rule:
    """``{facility or pattern: {field: value}}`` with only ``fields``, each valid (``WS4REDIS_HISTORY``...)."""
    names = ", ".join(repr(f) for f in fields)
    shape = f"expected {{facility or pattern: {{{names}}}}}"

    def problem_of(value: Any) -> str | None:
        if not isinstance(value, Mapping):
            return "is not a dict"
        for facility, entry in value.items():
            if not isinstance(facility, str) or not facility:
                return f"has key {facility!r}: a facility name or pattern is a non-empty string"
            if not isinstance(entry, Mapping):
                return f"[{facility!r}] is not a dict"
            for field, field_value in entry.items():
                if field not in fields:
                    return f"[{facility!r}] has an unknown key {field!r}"
                problem = fields[field](field_value)
                if problem is not None:
                    return f"[{facility!r}][{field!r}] {problem}"
        return None

    def rule(value: Any) -> str | None:
        problem = None if value is None else problem_of(value)
        return None if problem is None else f"{problem}; {shape}"

    return rule


def _patterns(value: Any) -> str | None:
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(p, str) and p for p in value):
        return None
    return "must be a list of facility names or fnmatch patterns, such as ['incident-*']"


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


_POSITIVE_INT = _number(integer=True)
_HOOK = _importable(none=True)

#: Setting -> its rule. Every setting of ``ws4redis.settings.DEFAULTS`` has one (a test holds it to that).
RULES: dict[str, Rule] = {
    "WEBSOCKET_URL": _url_prefix,
    "WS4REDIS_CONNECTION": _connection,
    "WS4REDIS_EXPIRE": _number(integer=True, above=False, none=True),
    "WS4REDIS_PREFIX": _text(),
    "WS4REDIS_SUBSCRIBER": _importable(none=False),
    "WS4REDIS_HEARTBEAT": _text(),
    "WS4REDIS_ALLOWED_CHANNELS": _importable(none=True),
    "WS4REDIS_PROCESS_REQUEST": _importable(none=True),
    "WS4REDIS_ALLOWED_ORIGINS": _origins,
    "WS4REDIS_POLICY": _choice("strict", "permissive"),
    "WS4REDIS_MAX_FACILITY_LENGTH": _POSITIVE_INT,
    "WS4REDIS_MAX_MESSAGE_SIZE": _POSITIVE_INT,
    "WS4REDIS_QUEUE_BYTES": _POSITIVE_INT,
    "WS4REDIS_POOL_SIZE": _POSITIVE_INT,
    "WS4REDIS_SUBSCRIBE_TIMEOUT": _number(),
    "WS4REDIS_WAKE_INTERVAL": _number(),
    "WS4REDIS_INSTANCE": _text(),
    "WS4REDIS_PING_INTERVAL": _number(none=True),
    "WS4REDIS_PING_TIMEOUT": _number(none=True),
    "WS4REDIS_HISTORY": _per_facility({"size": _POSITIVE_INT, "ttl": _POSITIVE_INT}),
    "WS4REDIS_RESUME_WAIT": _number(above=False, none=True),
    "WS4REDIS_PRESENCE": _per_facility({"ttl": _number(), "events": _flag, "grace": _number(above=False)}),
    "WS4REDIS_HOOKS": _per_facility({"connect": _HOOK, "message": _HOOK, "disconnect": _HOOK}),
    "WS4REDIS_HOOK_TIMEOUT": _number(none=True),
    "WS4REDIS_SLOW_CONSUMER": _choice("close", "drop-oldest"),
    "WS4REDIS_PUBLISH_RATE": _number(none=True),
    "WS4REDIS_PUBLISH_BURST": _number(above=False, minimum=1),
    "WS4REDIS_MAX_CONNECTIONS_PER_USER": _number(integer=True, none=True),
    "WS4REDIS_MAX_SUBSCRIPTIONS": _number(integer=True, none=True),
    "WS4REDIS_CONTROL_RATE": _number(none=True),
    "WS4REDIS_CONTROL_BURST": _number(above=False, minimum=1),
    "WS4REDIS_SIGNED_STREAMS": _patterns,
    "WS4REDIS_PRESENCE_GRACE": _number(above=False),
    "WS4REDIS_PRESENCE_SWEEP": _number(),
    "WS4REDIS_PRESENCE_SIGNAL_QUEUE": _POSITIVE_INT,
    "WS4REDIS_HANDSHAKE_CONCURRENCY": _number(integer=True, above=False),
}

#: The id of each setting's error (``ws4redis.E0nn``), stable in the order above: a project may silence one.
IDS = {name: f"ws4redis.E{index:03d}" for index, name in enumerate(RULES, start=1)}


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every ws4redis setting against its rule: one ``Error`` per broken setting, naming it and what it accepts."""
    errors: list[checks.CheckMessage] = []
    for name, rule in RULES.items():
        value = settings.get(name)
        problem = rule(value)
        if problem is not None:
            errors.append(checks.Error(f"{name} = {value!r} {problem}.", hint="See docs/settings.md.", id=IDS[name]))
    return errors


def register() -> None:
    """Register ``check_settings`` with Django's check framework (``Ws4RedisConfig.ready``)."""
    checks.register(check_settings, TAG)


def raise_if_invalid() -> None:
    """``ImproperlyConfigured`` listing every broken setting: a websocket server must not serve with one.

    Before Django is set up (a module-level application object) there is nothing to check yet: the server that
    sets Django up builds its application again, or runs the system checks itself (``runserver``).
    """
    from django.apps import apps

    if not apps.ready:
        return
    errors = [e for e in check_settings() if e.is_serious() and not e.is_silenced()]
    if errors:
        raise ImproperlyConfigured("; ".join(f"{e.id}: {e.msg}" for e in errors))
