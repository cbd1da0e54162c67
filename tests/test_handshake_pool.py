"""Handshakes under gevent share a few database connections (``WS4REDIS_HANDSHAKE_CONCURRENCY``, issue 22).

Real servers, Redis and websocket clients; the server records each database connection it opens
(``tests.project.middleware.DbConnectionLog``), so the tests count what a database would see.
"""

from __future__ import annotations

import concurrent.futures
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import People, connect, refused_status
from tests.gevent_servers import GeventServer
from tests.servers import UwsgiServer
from ws4redis.publisher import RedisPublisher

SOCKETS = 30


def _overrides(concurrency: int, **extra: Any) -> dict[str, Any]:
    """Persistent database connections, the counting middleware, and the pool's size."""
    from django.conf import settings

    databases = copy.deepcopy(settings.DATABASES)
    databases["default"]["CONN_MAX_AGE"] = 600
    return {
        "DATABASES": databases,
        "MIDDLEWARE": [*settings.MIDDLEWARE, "tests.project.middleware.DbConnectionLog"],
        "WS4REDIS_HANDSHAKE_CONCURRENCY": concurrency,
        **extra,
    }


Server = UwsgiServer | GeventServer


@pytest.fixture
def counted(uwsgi_factory: Callable[..., UwsgiServer], tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Path]]]:
    """Start a server of its own (``kind``: uWSGI or ``runwebsocket``) with the database connections it opens logged
    in a file; stopped after the test. (``uwsgi_factory``: Redis and the test database are ready.)"""
    started: list[Server] = []

    def start(overrides: dict[str, Any], kind: type[Server] = UwsgiServer) -> tuple[Server, Path]:
        log = tmp_path / f"db-{len(started)}.log"
        log.touch()
        server = kind(overrides=overrides, env={"WS4REDIS_TEST_DB_LOG": str(log)})
        started.append(server)
        return server, log

    yield start
    for server in started:
        server.stop()


def _connections(log: Path) -> int:
    return len(log.read_text().splitlines())


# runwebsocket: also the first burst on a just started worker, which hung it before (ws4redis.broker.redis_store)
@pytest.mark.parametrize("kind", [UwsgiServer, GeventServer], ids=["uwsgi", "runwebsocket"])
def test_a_burst_of_handshakes_shares_the_pools_database_connections(
    counted: Callable[..., tuple[Server, Path]], people: People, kind: type[Server]
) -> None:
    server, log = counted(_overrides(2), kind)
    cookies = [people.cookie(name) for name in ("alice", "bob", "carol")]
    # all handshakes at once: each reads the session and the user (the session and auth middleware, the policy)
    with concurrent.futures.ThreadPoolExecutor(SOCKETS) as pool:
        sockets = list(pool.map(
            lambda i: connect(server, "/ws/burst?subscribe-broadcast&subscribe-user", cookie=cookies[i % 3]),
            range(SOCKETS),
        ))
    RedisPublisher(facility="burst", broadcast=True).publish_message("to all")
    assert [ws.recv() for ws in sockets] == ["to all"] * SOCKETS  # every socket is open and subscribed
    # before the pool: one connection per handshake (30); now the pool's two greenlets' connections, kept
    assert 1 <= _connections(log) <= 2, log.read_text()


def test_refusals_keep_their_status_and_the_worker_serves_the_next_handshake(
    counted: Callable[..., tuple[Server, Path]], people: People
) -> None:
    server, log = counted(_overrides(1, WS4REDIS_HOOKS={"club": {"connect": "tests.project.ws_views.only_members"}}))
    cookie = people.cookie("alice")
    connect(server, "/ws/club?subscribe-user", cookie=cookie)  # its connect hook runs in the worker too
    assert _connections(log) == 1
    assert refused_status(server, "/ws/f?subscribe-user") == 403  # the channel policy: anonymous, no user channel
    assert refused_status(server, "/ws/f?subscribe-user", cookie=cookie, header=["X-Block-Me: 1"]) == 403  # MIDDLEWARE
    assert refused_status(server, "/ws/a:b?subscribe-broadcast") == 404  # no such facility
    assert refused_status(server, "/ws/club?subscribe-broadcast") == 403  # the connect hook: members only
    ws = connect(server, "/ws/f?subscribe-user", cookie=cookie)
    RedisPublisher(facility="f", users=["alice"]).publish_message("still served")
    assert ws.recv() == "still served"
    # the one worker survived every refusal: still its one connection, reused after a connect hook too
    assert _connections(log) == 1, log.read_text()


def test_zero_runs_each_handshake_in_its_own_greenlet_as_before(
    counted: Callable[..., tuple[Server, Path]], people: People
) -> None:
    server, log = counted(_overrides(0))
    cookie = people.cookie("alice")
    for _ in range(3):
        connect(server, "/ws/f?subscribe-user", cookie=cookie)
    assert _connections(log) == 3, log.read_text()


def test_the_pool_spawns_workers_only_for_jobs_that_would_wait_and_never_more_than_its_size() -> None:
    """In-process, on gevent's own loop: the pool's rules without a server around them."""
    import gevent

    from ws4redis.exceptions import HandshakeRefused
    from ws4redis.runtime.gevent.handshakes import HandshakePool

    pool = HandshakePool(3)
    for _ in range(5):
        assert pool.run(lambda: "done") == "done"
    assert pool.workers == 1  # one job at a time: one worker, reused

    running: list[int] = []
    peak = 0

    def job(i: int) -> int:
        nonlocal peak
        running.append(i)
        peak = max(peak, len(running))
        gevent.sleep(0.001)  # a query waiting on the network
        running.remove(i)
        if i % 3 == 0:
            refusal = HandshakeRefused("no")
            refusal.status = 429
            raise refusal
        return i

    def call(i: int) -> int:
        try:
            return pool.run(job, i)
        except HandshakeRefused as refusal:
            return -refusal.status

    callers = [gevent.spawn(call, i) for i in range(20)]
    gevent.joinall(callers, raise_error=True)
    assert [c.value for c in callers] == [-429 if i % 3 == 0 else i for i in range(20)]
    assert peak == 3 and pool.workers == 3  # bounded, and the refusals killed no worker
