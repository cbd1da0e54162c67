"""The test project's server on either transport, for end-to-end tests that must hold on both.

``any_server`` is parametrised over uWSGI and the gevent server (``manage.py runwebsocket --with-django``); each
returns a factory ``start(overrides)`` whose servers are started once per configuration for the whole session and
stopped by pid at its end. Import both ``*_fixture`` names into a test module to use them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.servers import RedisServer, stop_all

__all__ = ["any_server_fixture", "gevent_servers_fixture"]

_started: dict[str, Any] = {}


@pytest.fixture(scope="session", name="gevent_servers")
def gevent_servers_fixture(
    redis_server: RedisServer, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[Callable[..., Any]]:
    """Start (once per configuration) a gevent server of the test project; stopped by pid at the session's end."""
    from tests.gevent_servers import GeventServer

    def start(overrides: dict[str, Any] | None = None) -> Any:
        key = json.dumps(overrides or {}, sort_keys=True)
        if key not in _started:
            _started[key] = GeventServer(overrides=overrides)
        return _started[key]

    yield start
    stop_all(_started.values())
    _started.clear()


@pytest.fixture(params=["uwsgi", "gevent"], name="any_server")
def any_server_fixture(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A factory of the test project's server on each transport: ``any_server(overrides)``."""
    name = "uwsgi_factory" if request.param == "uwsgi" else "gevent_servers"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
