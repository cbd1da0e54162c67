"""The JS client's browser tests on uvicorn: the pages of ``tests/test_browser_client.py`` against the ASGI runtime.

The tests written against a server factory run unchanged, with uvicorn answering the factory (as
``tests/test_asgi_core_suite.py`` does for the end-to-end suites); the two that kill or freeze their own server are
written here again against a uvicorn process of their own. The drain test is ``tests/test_asgi_browser.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.asgi_servers import AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)
from tests.conftest import People
from tests.test_browser_client import (  # noqa: F401  (fixtures)
    allowed,
    chromium,
    goes_stale_then_reconnects,
    page_origin,
    reconnects_after_restart,
    test_original_api_page_receives_a_broadcast,
    test_two_tabs_of_two_users_get_only_their_own_messages,
)

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
    """uvicorn stopped and started again on its port: the page reconnects by itself, with jittered backoff."""
    reconnects_after_restart(chromium(), page_origin,
                             lambda port=None: AsgiServer("uvicorn", overrides=allowed, port=port))


def test_the_js_client_sees_a_frozen_uvicorn_go_stale_and_reconnects(
    chromium: Callable[[], Any],  # noqa: F811
    redis_server: Any,
    people: People,
    allowed: dict[str, Any],  # noqa: F811
    page_origin: str,  # noqa: F811
) -> None:
    """The uvicorn process stops answering (SIGSTOP) with the TCP link up: the page goes stale, reconnects after
    SIGCONT and receives again."""
    goes_stale_then_reconnects(chromium(), page_origin, AsgiServer("uvicorn", overrides=allowed))
