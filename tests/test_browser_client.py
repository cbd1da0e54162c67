"""ws4redis.js in a real Chromium against a real uWSGI and a real Redis.

The pages and ``ws4redis/static`` are served by a throwaway HTTP server on loopback (so the test project's URLconf
is left alone), and the uWSGI servers allow that origin with ``WS4REDIS_ALLOWED_ORIGINS``: the origin check stays
on, as in a deployment serving static files from another host. Every wait is on a page condition
(``wait_for_function``), never a sleep.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.conftest import People
from tests.servers import ROOT, Process, UwsgiServer, free_port, wait_for_port

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("WS4REDIS_CHROMIUM", "/usr/bin/chromium")
PAGES = ROOT / "tests" / "browser_pages"
STATIC = ROOT / "ws4redis" / "static"
TIMEOUT_MS = 15_000


class _PageHandler(http.server.SimpleHTTPRequestHandler):
    """Test pages under ``/__client__/``, the package's static files under ``/static/``; nothing else."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript"}

    def translate_path(self, path: str) -> str:
        path = urlsplit(path).path
        for prefix, base in (("/static/", STATIC), ("/__client__/", PAGES)):
            if path.startswith(prefix):
                file = (base / path[len(prefix) :]).resolve()
                if file.is_relative_to(base.resolve()):
                    return str(file)
        return str(PAGES / "missing")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a request log line per static file says nothing a failing assertion would not."""


@pytest.fixture(scope="session")
def page_origin() -> Iterator[str]:
    """Origin of a throwaway HTTP server for the pages, on loopback like uWSGI (Chromium's local-network checks
    refuse a websocket to 127.0.0.1 from a page that did not come from a local address)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def allowed(page_origin: str) -> dict[str, Any]:
    """Settings overrides letting the pages' origin open websockets (the origin check stays on for everyone else)."""
    return {"WS4REDIS_ALLOWED_ORIGINS": [page_origin]}


@pytest.fixture
def chromium(people: People) -> Iterator[Callable[[], Any]]:
    """Start a headless Chromium (Debian's) on first call.

    Lazily, because Playwright's sync API keeps an asyncio loop in this thread while it runs, and Django then refuses
    ORM calls (``SynchronousOnlyOperation``): a test makes its logins first, then starts the browser.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium")
    with contextlib.ExitStack() as stack:
        started: list[Any] = []

        def launch() -> Any:
            if not started:
                p = stack.enter_context(playwright_sync.sync_playwright())
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync"],
                )
                stack.callback(browser.close)
                started.append(browser)
            return started[0]

        yield launch


def open_page(browser: Any, origin: str, page: str, *, cookie: str | None = None,
              options: dict[str, Any] | str | None = None) -> Any:
    """A tab of a new browser context (its own cookie jar) showing ``page`` from ``origin``.

    ``options`` goes in the URL fragment (JSON unless a string): what a template would have rendered into the page.

    Cookies are per host, not per port, so a session cookie for 127.0.0.1 goes with the websocket to uWSGI.
    """
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    if cookie:
        name, value = cookie.split("=", 1)
        context.add_cookies([{"name": name, "value": value, "url": origin}])
    tab = context.new_page()
    tab.on("pageerror", lambda error: print(f"page error: {error}"))
    tab.on("console", lambda message: print(f"console: {message.text}"))
    if options is None:
        fragment = ""
    else:
        fragment = "#" + quote(options if isinstance(options, str) else json.dumps(options))
    tab.goto(f"{origin}/__client__/{page}{fragment}")
    return tab


def wait_events(tab: Any, event: str, count: int = 1, *, where: str = "true") -> list[dict[str, Any]]:
    """Wait until the page logged ``count`` ``event`` events (satisfying the JS expression ``where`` on ``e``)."""
    condition = (
        f"({{event, count}}) => (window.events || []).filter(e => e.event === event && ({where})).length >= count"
    )
    tab.wait_for_function(condition, arg={"event": event, "count": count})
    events: list[dict[str, Any]] = tab.evaluate("(event) => window.events.filter(e => e.event === event)", event)
    return events


def wait_message(tab: Any, data: str) -> dict[str, Any]:
    tab.wait_for_function("(data) => window.messages.some(m => m.data === data)", arg=data)
    message: dict[str, Any] = tab.evaluate("(data) => window.messages.find(m => m.data === data)", data)
    return message


def test_original_api_page_receives_a_broadcast(chromium: Callable[[], Any], uwsgi_factory: Any, people: People,
                                                page_origin: str, allowed: dict[str, Any]) -> None:
    """A page written for django-websocket-redis runs unchanged, on the legacy protocol (no subprotocol)."""
    from ws4redis.publisher import RedisPublisher

    server = uwsgi_factory(allowed)
    cookie = people.cookie("alice")  # before the browser: see ``chromium``
    websocket_uri = f"ws://127.0.0.1:{server.port}/ws/"  # the {{ WEBSOCKET_URI }} of the original's templates
    tab = open_page(chromium(), page_origin, "original.html", cookie=cookie, options=websocket_uri)
    tab.wait_for_function("() => window.calls.includes('connected') && ws4redis.is_connected()")
    assert tab.evaluate("() => ws4redis.get_state()") == 1
    assert tab.evaluate("() => ws4redis.protocol") == "legacy"
    RedisPublisher(facility="foobar", broadcast=True).publish_message("Hello from the server")
    tab.wait_for_function("() => window.received.includes('Hello from the server')")
    # publish-broadcast&echo: the page's own message comes back as is: no envelope, as the original received it.
    tab.evaluate("() => ws4redis.send_message('Hello from the page')")
    tab.wait_for_function("() => window.received.includes('Hello from the page')")
    assert tab.evaluate("() => window.received") == ["Hello from the server", "Hello from the page"]
    tab.evaluate("() => ws4redis.close()")
    tab.wait_for_function("() => ws4redis.is_closed()")
    assert tab.evaluate("() => window.calls") == ["connecting", "connected", "disconnected"]


def reconnects_after_restart(browser: Any, page_origin: str, start: Callable[..., Any]) -> None:
    """Stop the server ``start()`` made, start it again on the same port (``start(port=...)``): the page comes back
    by itself with full-jitter backoff and gets later messages. Shared by the uWSGI and the uvicorn test."""
    from ws4redis.publisher import RedisPublisher

    server = start()
    try:
        options = {"base": f"ws://127.0.0.1:{server.port}/ws/", "facility": "restart", "subscribe": ["broadcast"],
                   "backoff": {"base": 200, "cap": 1600}, "heartbeat": {"interval": 1000}}
        tab = open_page(browser, page_origin, "modern.html", options=options)
        wait_events(tab, "open")
        assert tab.evaluate("() => client.protocol") == "ws4redis.v2"
        RedisPublisher(facility="restart", broadcast=True).publish_message("before")
        assert wait_message(tab, "before")["audience"] == "broadcast"

        server.stop()
        wait_events(tab, "close")
        server = start(port=server.port)
        opens = wait_events(tab, "open", 2)
        assert opens[1]["info"]["reconnect"] is True

        RedisPublisher(facility="restart", broadcast=True).publish_message("after")
        message = wait_message(tab, "after")
        assert message == {"channel": "restart", "audience": "broadcast", "id": None, "data": "after"}
        # The client asked to resume; with no history yet the server says so, and the page is told.
        recovered = wait_events(tab, "recovered")
        assert recovered[0]["info"]["recovered"] is False
        closes = wait_events(tab, "close")
        assert all(c["info"]["willReconnect"] for c in closes)
        delays = [(c["info"]["delay"], c["info"]["ceiling"]) for c in closes]
        # Full jitter: each delay drawn anywhere below its ceiling, ceilings doubling from 200 ms up to the cap.
        assert all(0 <= delay < ceiling <= 1600 for delay, ceiling in delays), delays
        assert [ceiling for _, ceiling in delays] == [min(1600, 200 * 2**i) for i in range(len(delays))]
        tab.evaluate("() => client.close()")
    finally:
        server.stop()


def goes_stale_then_reconnects(browser: Any, page_origin: str, server: Any) -> None:
    """``server``'s processes stop answering (SIGSTOP, the TCP link stays up): the page shows "stale", drops the
    link, and reconnects after SIGCONT. Shared by the uWSGI and the uvicorn test; stops ``server`` at the end."""
    from ws4redis.publisher import RedisPublisher

    stopped: list[int] = []
    try:
        options = {"base": f"ws://127.0.0.1:{server.port}/ws/", "facility": "stale",
                   "heartbeat": {"interval": 250, "staleAfter": 2, "maxMissed": 4},
                   "backoff": {"base": 100, "cap": 400}, "connectTimeout": 1000}
        tab = open_page(browser, page_origin, "modern.html", options=options)
        wait_events(tab, "open")
        tab.wait_for_function("() => client.rtt !== null")  # pongs flow: heartbeats are answered

        for pid in server.workers():
            os.kill(pid, signal.SIGSTOP)  # our own server's worker: it stops answering, the TCP link stays up
            stopped.append(pid)
        stale = wait_events(tab, "stale")
        assert stale[0]["state"] == "stale"
        close = wait_events(tab, "close")[0]
        assert close["info"]["reason"].startswith("missed") and close["info"]["willReconnect"] is True
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        stopped.clear()

        wait_events(tab, "open", 2)
        RedisPublisher(facility="stale", broadcast=True).publish_message("alive again")
        wait_message(tab, "alive again")
        order = tab.evaluate("() => window.events.map(e => e.event).filter(e => e !== 'recovered')")
        assert order[:3] == ["open", "stale", "close"]
        tab.evaluate("() => client.close()")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        server.stop()


def test_reconnects_after_server_restart_with_jitter(chromium: Callable[[], Any], redis_server: Any, people: People,
                                                    page_origin: str, allowed: dict[str, Any]) -> None:
    """Kill uWSGI, start it again on the same port: the page comes back by itself and gets later messages."""
    reconnects_after_restart(chromium(), page_origin, lambda port=None: UwsgiServer(overrides=allowed, port=port))


def test_silent_server_goes_stale_then_reconnects(chromium: Callable[[], Any], redis_server: Any, people: People,
                                                 page_origin: str, allowed: dict[str, Any]) -> None:
    """The worker stops answering (SIGSTOP): the page shows "stale", drops the link, and reconnects after SIGCONT."""
    goes_stale_then_reconnects(chromium(), page_origin, UwsgiServer(overrides=allowed))


def test_two_tabs_of_two_users_get_only_their_own_messages(chromium: Callable[[], Any], uwsgi_factory: Any,
                                                           people: People, page_origin: str,
                                                           allowed: dict[str, Any]) -> None:
    """Two browser contexts with two users' session cookies; user messages reach only their user."""
    from ws4redis.publisher import RedisPublisher

    server = uwsgi_factory(allowed)
    options = {"base": f"ws://127.0.0.1:{server.port}/ws/", "facility": "inbox", "subscribe": ["user"]}
    cookies = {name: people.cookie(name) for name in ("alice", "bob")}  # before the browser: see ``chromium``
    alice = open_page(chromium(), page_origin, "classic.html", cookie=cookies["alice"], options=options)
    bob = open_page(chromium(), page_origin, "classic.html", cookie=cookies["bob"], options=options)
    wait_events(alice, "open")
    wait_events(bob, "open")

    RedisPublisher(facility="inbox", users=["alice"]).publish_message("for alice")
    RedisPublisher(facility="inbox", users=["bob"]).publish_message("for bob")
    RedisPublisher(facility="inbox", users=["alice", "bob"]).publish_message("for both")
    wait_message(alice, "for both")
    wait_message(bob, "for both")
    # Each user channel is in order, so "for both" arriving means anything else for that user has arrived too.
    assert alice.evaluate("() => messages.map(m => m.data)") == ["for alice", "for both"]
    assert bob.evaluate("() => messages.map(m => m.data)") == ["for bob", "for both"]
    assert wait_message(alice, "for alice") == {"channel": "inbox", "audience": "user", "id": None, "data": "for alice"}
    for tab in (alice, bob):
        tab.evaluate("() => client.close()")


def start_gevent_server(port: int, overrides: dict[str, Any]) -> Process:
    """The gevent websocket server (``manage.py runwebsocket``) of the test project on ``port``."""
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.project.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "WS4REDIS_TEST_OVERRIDES": json.dumps(overrides),
    })
    process = Process([sys.executable, "-m", "django", "runwebsocket", "--bind", f"127.0.0.1:{port}",
                       "--reconnect-window", "1.5", "--grace", "2"], env=env, cwd=ROOT)
    wait_for_port(port, proc=process.proc)
    return process


def test_gevent_server_shutdown_delay_is_honoured(chromium: Callable[[], Any], redis_server: Any, people: People,
                                                  page_origin: str, allowed: dict[str, Any]) -> None:
    """v2 under the gevent server; a graceful shutdown says when to come back, and the page waits at least that."""
    from ws4redis.publisher import RedisPublisher

    port = free_port()
    server = start_gevent_server(port, allowed)
    try:
        options = {"base": f"ws://127.0.0.1:{port}/ws/", "facility": "deploy", "backoff": {"base": 50, "cap": 100}}
        tab = open_page(chromium(), page_origin, "modern.html", options=options)
        tab.evaluate("() => client.on('shutdown', (info) => events.push({event: 'shutdown', info}))")
        wait_events(tab, "open")
        assert tab.evaluate("() => client.protocol") == "ws4redis.v2"
        server.stop()  # SIGTERM: graceful, every client is told a reconnect delay
        suggested = wait_events(tab, "shutdown")[0]["info"]["reconnect_in"]
        close = wait_events(tab, "close")[0]["info"]
        assert 500 <= suggested <= 1500
        # Honoured, not the 50-100 ms the backoff would have chosen: never earlier, spread over one more delay.
        assert suggested <= close["delay"] <= 2 * suggested
        server = start_gevent_server(port, allowed)
        wait_events(tab, "open", 2)
        RedisPublisher(facility="deploy", broadcast=True).publish_message("after the deploy")
        wait_message(tab, "after the deploy")
        tab.evaluate("() => client.close()")
    finally:
        server.stop()
