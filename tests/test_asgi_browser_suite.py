"""The JS client's browser tests on uvicorn: the pages of ``tests/test_browser_client.py`` against the ASGI runtime.

The tests written against a server factory run unchanged, with uvicorn answering the factory (as
``tests/test_asgi_core_suite.py`` does for the end-to-end suites); the two that kill or freeze their own server are
written here again against a uvicorn process of their own. The drain test is ``tests/test_asgi_browser.py``'s.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.asgi_servers import AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)
from tests.conftest import People
from tests.test_browser_client import (  # noqa: F401  (fixtures)
    allowed,
    chromium,
    open_page,
    page_origin,
    test_original_api_page_receives_a_broadcast,
    test_two_tabs_of_two_users_get_only_their_own_messages,
    wait_events,
    wait_message,
)
from ws4redis.publisher import RedisPublisher

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def uwsgi_factory(asgi_servers: Callable[..., AsgiServer]) -> Callable[..., AsgiServer]:
    """The browser tests' server factory, answered by uvicorn in this module."""

    def start(overrides: dict[str, Any] | None = None, **kwargs: Any) -> AsgiServer:
        return asgi_servers("uvicorn", overrides)

    return start


def test_the_js_client_comes_back_after_uvicorn_restarts(
    chromium: Callable[[], Any],  # noqa: F811  (the fixtures imported above)
    redis_server: Any,
    people: People,
    allowed: dict[str, Any],  # noqa: F811
    page_origin: str,  # noqa: F811
) -> None:
    """uvicorn stopped and started again on its port: the page reconnects by itself, with jittered backoff, and is
    told that nothing could be recovered (no history on this facility)."""
    server = AsgiServer("uvicorn", overrides=allowed)
    try:
        options = {"base": f"ws://127.0.0.1:{server.port}/ws/", "facility": "asgirestart", "subscribe": ["broadcast"],
                   "backoff": {"base": 200, "cap": 800}}
        tab = open_page(chromium(), page_origin, "modern.html", options=options)
        wait_events(tab, "open")
        RedisPublisher(facility="asgirestart", broadcast=True).publish_message("before")
        wait_message(tab, "before")

        server.stop()
        wait_events(tab, "close")
        server = AsgiServer("uvicorn", overrides=allowed, port=server.port)
        opens = wait_events(tab, "open", 2)
        assert opens[1]["info"]["reconnect"] is True
        RedisPublisher(facility="asgirestart", broadcast=True).publish_message("after")
        assert wait_message(tab, "after")["audience"] == "broadcast"
        assert wait_events(tab, "recovered")[0]["info"]["recovered"] is False
        closes = wait_events(tab, "close")
        assert all(0 <= c["info"]["delay"] < c["info"]["ceiling"] <= 800 for c in closes)
        tab.evaluate("() => client.close()")
    finally:
        server.stop()


def test_the_js_client_sees_a_frozen_uvicorn_go_stale_and_reconnects(
    chromium: Callable[[], Any],  # noqa: F811
    redis_server: Any,
    people: People,
    allowed: dict[str, Any],  # noqa: F811
    page_origin: str,  # noqa: F811
) -> None:
    """The uvicorn process stops answering (SIGSTOP) with the TCP link up: the heartbeat marks the page stale, it
    drops the link, and after SIGCONT it reconnects and receives again."""
    server = AsgiServer("uvicorn", overrides=allowed)
    stopped: list[int] = []
    try:
        options = {"base": f"ws://127.0.0.1:{server.port}/ws/", "facility": "asgistale",
                   "heartbeat": {"interval": 250, "staleAfter": 2, "maxMissed": 4},
                   "backoff": {"base": 100, "cap": 400}, "connectTimeout": 1000}
        tab = open_page(chromium(), page_origin, "modern.html", options=options)
        wait_events(tab, "open")
        tab.wait_for_function("() => client.rtt !== null")  # the server answers heartbeats

        for pid in server.workers():
            os.kill(pid, signal.SIGSTOP)  # our own uvicorn, by pid
            stopped.append(pid)
        assert wait_events(tab, "stale")[0]["state"] == "stale"
        close = wait_events(tab, "close")[0]
        assert close["info"]["reason"].startswith("missed") and close["info"]["willReconnect"] is True
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        stopped.clear()

        wait_events(tab, "open", 2)
        RedisPublisher(facility="asgistale", broadcast=True).publish_message("alive again")
        wait_message(tab, "alive again")
        tab.evaluate("() => client.close()")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        server.stop()
