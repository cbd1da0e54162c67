"""Receivers of the presence signals for tests/test_presence_signals.py, installed in uWSGI workers by that test's
``INSTALLED_APPS`` override. They fire inside the workers, so each records into a Redis list the test reads."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import gevent
from django.apps import AppConfig

SIGNALS_KEY = "test:signals"


def _record(kind: str, facility: str, who: str) -> None:
    from ws4redis.redis_store import get_connection

    entry = {"kind": kind, "facility": facility, "who": who, "pid": os.getpid(), "at": time.time()}
    get_connection().rpush(SIGNALS_KEY, json.dumps(entry))


def on_user(sender: Any, *, user: str, facility: str, signal: Any, **kwargs: Any) -> None:
    from ws4redis import signals

    if facility == "broken":
        raise RuntimeError("a receiver that fails")
    if facility == "slow":
        gevent.sleep(3)  # a slow receiver (an email sent inline): it must delay no message delivery
    _record("user_online" if signal is signals.user_online else "user_offline", facility, user)


def on_session(sender: Any, *, session: str, facility: str, signal: Any, **kwargs: Any) -> None:
    from ws4redis import signals

    _record("session_online" if signal is signals.session_online else "session_offline", facility, session)


class Receivers(AppConfig):
    name = "tests.project"
    label = "presence_receivers"

    def ready(self) -> None:
        from ws4redis import signals

        for signal in (signals.user_online, signals.user_offline):
            signal.connect(on_user, dispatch_uid=f"test-{id(signal)}")
        for signal in (signals.session_online, signals.session_offline):
            signal.connect(on_session, dispatch_uid=f"test-{id(signal)}")
