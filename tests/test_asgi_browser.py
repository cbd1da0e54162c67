"""The JS client (``ws4redis.js``, v2) in a real Chromium against uvicorn: messages, a user's own channel, and a drain
it comes back from by itself. Pages and fixtures are ``tests/test_browser_client.py``'s."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from tests.asgi_servers import AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)
from tests.conftest import People
from tests.test_browser_client import (  # noqa: F401  (fixtures)
    allowed,
    chromium,
    open_page,
    page_origin,
    wait_events,
    wait_message,
)
from ws4redis.publisher import RedisPublisher

pytestmark = pytest.mark.browser


def test_the_js_client_on_uvicorn_receives_and_comes_back_after_a_drain(
    chromium: Callable[[], Any],  # noqa: F811  (the fixtures imported above)
    asgi_servers: Callable[..., AsgiServer],
    people: People,
    allowed: dict[str, Any],  # noqa: F811
    page_origin: str,  # noqa: F811
) -> None:
    server = asgi_servers("uvicorn", allowed)
    cookie = people.cookie("alice")  # before the browser (see tests/test_browser_client.py ``chromium``)
    options = {"base": f"ws://127.0.0.1:{server.port}/ws/", "facility": "jsasgi", "subscribe": ["broadcast", "user"],
               "backoff": {"base": 200, "cap": 400}}
    tab = open_page(chromium(), page_origin, "modern.html", cookie=cookie, options=options)
    wait_events(tab, "open")
    assert tab.evaluate("() => client.protocol") == "ws4redis.v2"
    RedisPublisher(facility="jsasgi", broadcast=True).publish_message("to everyone")
    assert wait_message(tab, "to everyone")["audience"] == "broadcast"
    RedisPublisher(facility="jsasgi", users=["alice"]).publish_message("to alice")
    assert wait_message(tab, "to alice")["audience"] == "user"
    call_command("ws4redis_drain", window=1, stdout=io.StringIO())
    closes = wait_events(tab, "close")
    assert closes[0]["info"]["willReconnect"] is True
    wait_events(tab, "open", 2)
    RedisPublisher(facility="jsasgi", users=["alice"]).publish_message("after the drain")
    wait_message(tab, "after the drain")
    tab.evaluate("() => client.close()")
