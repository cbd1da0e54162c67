"""Live HTML end to end: real htmx (with its ws extension) and real Turbo in Chromium, against uWSGI and the gevent
server, with a view and a Celery worker publishing fragments.

htmx, its ws extension and Turbo are installed from the npm registry into a cache directory on first use
(``npm install --prefix``; ``WS4REDIS_NPM_CACHE`` moves it, an existing one is reused) and served by the test pages'
own Django (``tests/live_pages``), so nothing comes from a CDN. The Celery task runs in a real worker process
(``--pool=solo``). Every wait is on a page condition (Playwright's ``expect``, ``wait_for_function``) or a log line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import People, connect, refused_status
from tests.gevent_servers import project_env
from tests.servers import ROOT, Process, RedisServer, UwsgiServer, free_port, wait_for_port

playwright_sync = pytest.importorskip("playwright.sync_api")
pytest.importorskip("celery")
expect = playwright_sync.expect

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("WS4REDIS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SETTINGS = "tests.live_pages.settings"
NPM_PACKAGES = ["htmx.org@2.0.8", "htmx-ext-ws@2.0.4", "@hotwired/turbo@8.0.23"]
NPM_FILES = ["htmx.org/dist/htmx.min.js", "htmx-ext-ws/dist/ws.js", "@hotwired/turbo/dist/turbo.es2017-umd.js"]
KINDS = ["uwsgi", "gevent"]
CLIENTS = ["htmx", "turbo"]
TIMEOUT_MS = 30_000  # generous: a restart and htmx's own reconnect backoff on a loaded CI machine


@pytest.fixture(scope="session")
def npm_dir() -> Path:
    """htmx, htmx-ext-ws and Turbo from the npm registry, in a cache directory reused while it holds them."""
    base = Path(os.environ.get("WS4REDIS_NPM_CACHE", Path.home() / ".cache" / "ws4redis-npm"))
    where = base / ("live-html-" + "-".join(p.replace("/", "_").replace("@", "") for p in NPM_PACKAGES))
    if all((where / "node_modules" / f).exists() for f in NPM_FILES):
        return where
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed (apt-get install npm): htmx and Turbo cannot be installed for these tests")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "install", "--prefix", str(where), "--no-audit", "--no-fund", "--ignore-scripts",
                           *NPM_PACKAGES], capture_output=True, text=True, timeout=300)
    missing = [f for f in NPM_FILES if not (where / "node_modules" / f).exists()]
    assert done.returncode == 0 and not missing, done.stdout[-3000:] + done.stderr[-3000:]
    return where


@pytest.fixture(scope="session")
def live_env(npm_dir: Path) -> Iterator[dict[str, str]]:
    """What the live pages' processes need: where htmx and Turbo are, and Celery's broker, a Redis of its own that
    the tests' flushes before each test do not touch (they would drop kombu's bindings under a running worker)."""
    broker = RedisServer()
    yield {"WS4REDIS_LIVE_NPM_DIR": str(npm_dir), "WS4REDIS_LIVE_BROKER": f"redis://127.0.0.1:{broker.port}/0"}
    broker.stop()


def _env(extra: dict[str, str]) -> dict[str, str]:
    return project_env(settings=SETTINGS, env=extra)


class GeventLive(Process):
    """``manage.py runwebsocket --with-django`` of the live pages on ``port`` (a restart keeps the URL)."""

    def __init__(self, port: int, extra: dict[str, str]) -> None:
        self.port = port
        super().__init__([sys.executable, "-m", "django", "runwebsocket", "--bind", f"127.0.0.1:{port}",
                          "--with-django", "--reconnect-window", "1", "--grace", "1"], env=_env(extra), cwd=ROOT)
        wait_for_port(port, proc=self.proc)


def start_server(kind: str, extra: dict[str, str], port: int | None = None) -> Any:
    if kind == "uwsgi":
        return UwsgiServer(settings=SETTINGS, env=extra, port=port)
    return GeventLive(port or free_port(), extra)


@pytest.fixture(scope="module")
def _orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an asyncio loop in this thread, and Django then refuses ORM calls; the browser
    lives for the whole module here (one launch, not one per test), and logins and the test database's flushes
    happen while it is idle, from this thread: safe, so Django is told so for this module only."""
    old = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if old is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = old


@pytest.fixture(scope="module")
def browser(_orm_beside_playwright: None) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium")
    expect.set_options(timeout=TIMEOUT_MS)
    try:
        with playwright_sync.sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        expect.set_options(timeout=5_000)  # Playwright's default, for the other modules


@pytest.fixture(scope="module")
def servers(redis_server: Any, django_db_setup: Any, django_db_blocker: Any,
            live_env: dict[str, str]) -> Iterator[Callable[[str], Any]]:
    """One uWSGI and one gevent server of the live pages, each started on first use and kept for the module."""
    started: dict[str, Any] = {}

    def get(kind: str) -> Any:
        if kind not in started:
            started[kind] = start_server(kind, live_env)
        return started[kind]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def worker(redis_server: Any, django_db_setup: Any, live_env: dict[str, str]) -> Iterator[Process]:
    """A real Celery worker (solo pool) of the live pages, ready when it says so."""
    celery = Path(sys.executable).with_name("celery")
    process = Process([str(celery), "-A", "tests.live_pages.worker", "worker", "--pool=solo", "--loglevel=INFO",
                       "--without-gossip", "--without-mingle", "--without-heartbeat"], env=_env(live_env), cwd=ROOT)
    deadline = time.monotonic() + 60
    while "ready." not in process.output():
        if process.proc.poll() is not None or time.monotonic() > deadline:
            process.stop()
            raise RuntimeError("the Celery worker did not start:\n" + process.output()[-4000:])
        time.sleep(0.05)
    yield process
    process.stop()


def open_live(browser: Any, server: Any, client: str, *, incident: str = "incident-7", cookie: str | None = None,
              streams: int = 2) -> Any:
    """A tab showing the live page, once each of its ``streams`` sockets is open."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    origin = f"http://127.0.0.1:{server.port}"
    if cookie:
        name, value = cookie.split("=", 1)
        context.add_cookies([{"name": name, "value": value, "url": origin}])
    tab = context.new_page()
    tab.on("pageerror", lambda error: print(f"page error: {error}"))
    tab.goto(f"{origin}/live/{client}/?incident={incident}")
    wait_open(tab, streams)
    return tab


def wait_open(tab: Any, streams: int) -> None:
    tab.wait_for_function("(n) => document.querySelectorAll('[data-ws4redis-state=open]').length === n", arg=streams)


def post(server: Any, path: str, **data: str) -> int:
    body = urllib.parse.urlencode(data).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", data=body, timeout=10) as response:
        return int(response.status)


def status_fragment(client: str, text: str) -> str:
    from ws4redis import fragments

    build = fragments.htmx_oob if client == "htmx" else fragments.turbo_stream
    return build("update", target="status", html=text)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_view_and_a_celery_task_change_the_page(kind: str, client: str, servers: Callable[[str], Any],
                                                  worker: Process, browser: Any) -> None:
    server = servers(kind)
    tab = open_live(browser, server, client, incident="incident-7")
    other = open_live(browser, server, client, incident="incident-8")
    title = '<img src=x onerror="window.pwned=1"> Disk full & co'
    assert post(server, f"/live/{client}/incidents/", pk="41", title=title) == 204  # the view publishes
    for page in (tab, other):
        expect(page.locator("#incident-41")).to_have_text(title)  # user data arrives as text, not markup
        assert page.locator("#incidents img").count() == 0
    assert post(server, f"/live/{client}/status/", incident="incident-7", text="investigating") == 202  # Celery
    expect(tab.locator("#status")).to_have_text("investigating")
    assert post(server, f"/live/{client}/status/", incident="incident-8", text="resolved") == 202
    expect(other.locator("#status")).to_have_text("resolved")
    # The worker runs tasks in order, so incident-7's page has had every chance to (wrongly) get incident-8's.
    assert tab.locator("#status").inner_text() == "investigating"
    assert tab.evaluate("() => window.pwned") is None
    for page in (tab, other):
        page.context.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_every_action_in_real_htmx_and_turbo(client: str, servers: Callable[[str], Any], browser: Any) -> None:
    """The seven actions, by id and by selector, table rows included, in one message, as the browser applies them."""
    from django.utils.html import format_html

    from ws4redis import fragments

    tab = open_live(browser, servers("uwsgi"), client)
    build = fragments.htmx_oob if client == "htmx" else fragments.turbo_stream

    def item(name: str) -> str:
        return format_html('<li id="{}">{}</li>', name.lower(), name)

    fragments.publish([
        build("append", target="list", html=item("e")),
        build("prepend", target="list", html=item("z")),
        build("replace", target="b", html=item("B")),
        build("update", target="c", html=format_html("<em>{}</em>", "C")),
        build("remove", target="a"),
        build("before", target="d", html=item("y")),
        build("after", target="d", html=item("x")),
        build("update", targets="p.many", html="M"),
    ], facility="board", broadcast=True)
    # htmx parses a message in one mode: table rows travel in a message of their own (publish refuses a mix).
    fragments.publish(build("append", target="rows", html=format_html('<tr id="r2"><td>{}</td></tr>', "r2")),
                      facility="board", broadcast=True)
    expect(tab.locator("#list > li")).to_have_text(["z", "B", "C", "y", "d", "x", "e"])
    assert tab.locator("#c").inner_html() == "<em>C</em>"
    expect(tab.locator("#rows td")).to_have_text(["r1", "r2"])
    expect(tab.locator("p.many")).to_have_text(["M", "M"])
    tab.context.close()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_two_users_each_see_only_their_own_fragments(kind: str, client: str, servers: Callable[[str], Any],
                                                     browser: Any, people: People) -> None:
    from ws4redis import fragments

    server = servers(kind)
    build = fragments.htmx_oob if client == "htmx" else fragments.turbo_stream
    tabs = {name: open_live(browser, server, client, cookie=people.cookie(name), streams=3)
            for name in ("alice", "bob")}

    def note(text: str) -> str:
        return build("append", target="inbox", template="live/note.html", context={"text": text})

    with override_settings(TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                                       "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader",
                                                                {"live/note.html": "<li>{{ text }}</li>"})]}}]):
        fragments.publish(note("for alice"), facility="inbox", users=["alice"])
        fragments.publish(note("for bob"), facility="inbox", users=["bob"])
        fragments.publish(note("for both"), facility="inbox", users=["alice", "bob"])
    # One user channel is in order: "for both" arriving means everything before it for that user has arrived.
    expect(tabs["alice"].locator("#inbox li")).to_have_text(["for alice", "for both"])
    expect(tabs["bob"].locator("#inbox li")).to_have_text(["for bob", "for both"])
    for tab in tabs.values():
        tab.context.close()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_page_reconnects_after_a_restart_and_shows_the_current_state(
    kind: str, client: str, redis_server: Any, django_db_setup: Any, live_env: dict[str, str], browser: Any
) -> None:
    from ws4redis import fragments

    port = free_port()
    server = start_server(kind, live_env, port)
    try:
        tab = open_live(browser, server, client, incident="incident-3")
        fragments.publish(status_fragment(client, "before"), facility="incident-3", broadcast=True, expire=60)
        expect(tab.locator("#status")).to_have_text("before")
        server.stop()
        tab.wait_for_function("() => document.querySelectorAll('[data-ws4redis-state=open]').length === 0")
        # Published while no server runs: the page can only learn it from the kept message when it reconnects.
        fragments.publish(status_fragment(client, "changed while down"), facility="incident-3", broadcast=True,
                          expire=60)
        server = start_server(kind, live_env, port)
        expect(tab.locator("#status")).to_have_text("changed while down")
        wait_open(tab, 2)
        fragments.publish(status_fragment(client, "after"), facility="incident-3", broadcast=True, expire=60)
        expect(tab.locator("#status")).to_have_text("after")
        tab.context.close()
    finally:
        server.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_forged_or_expired_signatures_are_refused_before_the_upgrade(kind: str, servers: Callable[[str], Any]) -> None:
    from ws4redis import fragments
    from ws4redis.streams import sign_stream

    server = servers(kind)
    with override_settings(WS4REDIS_SIGNED_STREAMS=["incident-*"]):
        valid = sign_stream("incident-5", expires_in=60)
        expired = sign_stream("incident-5", expires_in=-1)
        other = sign_stream("incident-6")
    forged = valid[:-3] + ("xyz" if not valid.endswith("xyz") else "abc")
    base = "/ws/incident-5?subscribe-broadcast"
    assert refused_status(server, base) == 403
    assert refused_status(server, f"{base}&sig={forged}") == 403
    assert refused_status(server, f"{base}&sig={expired}") == 403
    assert refused_status(server, f"{base}&sig={other}") == 403  # another object's signature
    assert refused_status(server, f"{base}&publish-broadcast&sig={valid}") == 403  # never publish into a stream
    fragments.publish("kept", facility="incident-5", broadcast=True, expire=60)
    ws = connect(server, f"{base}&sig={valid}")
    assert ws.recv() == "kept"  # accepted, and the kept message replayed as on any facility
    ws.close()



def demo_manage(demo: Any, *args: str) -> None:
    """``manage.py`` of a running demo, with the environment ``run_demo.py`` gives its own processes."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("run_demo", ROOT / "examples/chatserver/run_demo.py")
    assert spec is not None and spec.loader is not None
    run_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_demo)
    state = json.loads((demo.state / "demo.json").read_text())
    env = run_demo.Demo(http=demo.address, redis_port=state["redis_port"], state_dir=demo.state, quiet=True).env
    done = subprocess.run([sys.executable, str(ROOT / "examples/chatserver/manage.py"), *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_demo_incident_board(browser: Any) -> None:
    """The chatserver demo's incident board: htmx pages with no script of the demo's own, a view, the Celery worker
    and a management command changing them, one signed stream per incident (a forged signature refused with 403,
    a browser publishing into the board too)."""
    import websocket

    from tests.test_demo import RunningDemo, sign_in

    demo = RunningDemo()
    try:
        alice, bob = sign_in(browser, demo, "alice"), sign_in(browser, demo, "bob")
        for page in (alice, bob):
            page.goto(demo.url + "incidents/")
            expect(page.locator("[data-ws4redis-live]")).to_have_attribute("data-ws4redis-state", "open")
        board_url = alice.locator("[data-ws4redis-live]").get_attribute("ws-connect") or ""
        alice.fill("#incident-title", "Checkout <b>502</b>s")
        alice.select_option("#incident-severity", "sev1")
        alice.click("#incident-open")  # hx-post to a view; the saved row is published after commit
        for page in (alice, bob):
            expect(page.locator("#incident-rows tr.incident")).to_have_count(1)
            expect(page.locator("#incident-rows tr.incident a")).to_have_text("Checkout <b>502</b>s")
        bob.click("#incident-rows tr.incident a")
        expect(bob.locator("[data-ws4redis-live]")).to_have_attribute("data-ws4redis-state", "open")
        url = bob.locator("[data-ws4redis-live]").get_attribute("ws-connect") or ""
        assert "/ws/incident-1?subscribe-broadcast&sig=" in url
        alice.goto(bob.url)
        expect(alice.locator("[data-ws4redis-live]")).to_have_attribute("data-ws4redis-state", "open")
        alice.click("#incident-diagnose")  # queued on Celery; each step of the task saves and so publishes
        expect(bob.locator("#incident-status")).to_have_text("Investigating")  # the task's first steps
        expect(bob.locator("#incident-status")).to_have_text("Mitigated", timeout=30_000)
        expect(bob.locator("#incident-note")).to_have_text("diagnosis for alice (4/4): error rate back to normal")
        bob.click("#incident-resolve")
        expect(alice.locator("#incident-status")).to_have_text("Resolved")
        demo_manage(demo, "incident", "1", "reopen")  # a management command: the same after-commit publishing
        expect(alice.locator("#incident-status")).to_have_text("Open")
        expect(bob.locator("#incident-note")).to_have_text("manage.py incident: reopen")
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in bob.context.cookies())
        forged = url.rsplit("sig=", 1)[0] + "sig=0:forged"
        injecting = board_url.replace("?", "?publish-broadcast&", 1)  # a valid signature, but a browser publishing
        for refused_url in (forged, injecting):
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                websocket.create_connection(refused_url, timeout=5, cookie=cookie)
            assert refused.value.status_code == 403
        bob.screenshot(path=str(ROOT / "test-output" / "incident-bob.png"))
        for page in (alice, bob):
            page.context.close()
    finally:
        left = demo.stop()
    assert left == [], f"run_demo.py left processes running: {left}"
