"""End-to-end suites of the WSGI runtimes on uvicorn: the same tests, unchanged, on the ASGI runtime.

``tests/test_websocket.py`` (audiences, kept messages, refusals, the hub), ``test_history.py`` (resume, windows,
replays), ``test_multi_facility.py``, ``test_revocation.py`` and ``test_limits.py``.

As ``tests/test_gevent_transport.py`` does for the gevent server, this module collects the core's tests again and
overrides their ``uwsgi_factory`` fixture with a uvicorn factory, so each test that took a ``UwsgiServer`` takes an
``AsgiServer`` here. Skipped are only what is the server's and not ws4redis' under ASGI (each says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests import test_history, test_limits, test_multi_facility, test_revocation, test_websocket
from tests.asgi_servers import AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)

_SKIPPED_HERE = {
    # An ASGI server answers a malformed upgrade itself (400) before any application sees it (docs/servers.md).
    "test_unsupported_version_is_426",
}
for _module in (test_websocket, test_history, test_multi_facility, test_revocation, test_limits):
    globals().update({
        name: value for name, value in vars(_module).items()
        if name.startswith("test_") and callable(value) and name not in _SKIPPED_HERE
    })


@pytest.fixture(scope="module")
def uwsgi_factory(asgi_servers: Callable[..., AsgiServer]) -> Callable[..., AsgiServer]:
    """The core tests' server factory, answered by uvicorn in this module (uWSGI-only arguments are ignored)."""

    def start(overrides: dict[str, Any] | None = None, **kwargs: Any) -> AsgiServer:
        return asgi_servers("uvicorn", overrides)

    return start


@pytest.fixture(name="any_server")
def any_server_here(uwsgi_factory: Callable[..., AsgiServer]) -> Callable[..., AsgiServer]:
    """Tests written for every transport (``tests/servers_any.py``) take uvicorn in this module."""
    return uwsgi_factory
