"""The process's ``ws4redis.core.Config``: read from the settings once, dropped on Django's ``setting_changed``.

A value assigned to ``ws4redis.settings`` (0.6's way of overriding a setting in tests) for one of the config's
settings is honoured too: the config is then read afresh on each call, as long as such an assignment exists.
"""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed

from ws4redis import settings
from ws4redis.core.config import SETTINGS, Config

__all__ = ["current", "reset"]

_current: Config | None = None


def current() -> Config:
    """The ``Config`` of the current settings (one shared, frozen instance)."""
    global _current
    if not SETTINGS.isdisjoint(vars(settings)):
        return Config.from_settings(settings.get)
    config = _current
    if config is None:
        config = _current = Config.from_settings(settings.get)
    return config


def reset(**kwargs: Any) -> None:
    """Forget the cached config (connected to ``setting_changed``: ``override_settings`` takes effect at once)."""
    global _current
    _current = None


setting_changed.connect(reset, dispatch_uid="ws4redis.configuration.reset")
