"""The end-to-end suite of ``tests/test_websocket.py`` on uvicorn: the same tests, unchanged, on the ASGI runtime.

As ``tests/test_gevent_transport.py`` does for the gevent server, this module collects the core's tests again and
overrides their ``uwsgi_factory`` fixture with a uvicorn factory, so each test that took a ``UwsgiServer`` takes an
``AsgiServer`` here. Skipped are only what is the server's and not ws4redis' under ASGI (each says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests import test_websocket as _core
from tests.asgi_servers import AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)

_SKIPPED_HERE = {
    # An ASGI server answers a malformed upgrade itself (400) before any application sees it (docs/servers.md).
    "test_unsupported_version_is_426",
}
globals().update({
    name: value for name, value in vars(_core).items()
    if name.startswith("test_") and callable(value) and name not in _SKIPPED_HERE
})


@pytest.fixture(scope="module")
def uwsgi_factory(asgi_servers: Callable[..., AsgiServer]) -> Callable[..., AsgiServer]:
    """The core tests' server factory, answered by uvicorn in this module (uWSGI-only arguments are ignored)."""

    def start(overrides: dict[str, Any] | None = None, **kwargs: Any) -> AsgiServer:
        return asgi_servers("uvicorn", overrides)

    return start
