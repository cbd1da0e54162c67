"""The README quick start and the snippets of docs/client.md, servers.md and migration.md, run as printed.

Every fenced block of those files is preceded by an HTML comment, invisible on the rendered page:
``<!-- doc-test: NAME -->`` (run here, by name) or ``<!-- doc-untested: why -->``. The blocks are read from the
Markdown files at test time, never copied into this module, so a doc edit that breaks a snippet fails here.

The steps run on a fresh ``django-admin startproject`` in a new virtualenv, with ``pip install`` of the package as
the README says (the wheel is built once per run, from a copy of the package's files; pip's cache is reused). The only
changes made to a snippet are the port numbers (``8000``, Redis' ``6379``), replaced by free loopback ports, and each
replacement must find its target. Pages run in Chromium: a publish made on the server reaches the page.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT, RedisServer, free_port, wait_for_port

DOCS = ["README.md", "docs/client.md", "docs/servers.md", "docs/migration.md"]
FENCE = re.compile(r"^(?P<indent> *)```.*?$\n(?P<body>.*?)^(?P=indent)```$", re.S | re.M)
MARKED = re.compile(r"<!-- doc-(?:test: (?P<name>[\w-]+)|untested: [^>]+) -->\n"
                    r"(?P<indent> *)```[\w-]*\n(?P<body>.*?)^(?P=indent)```$", re.S | re.M)
CHROMIUM = os.environ.get("WS4REDIS_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000


def snippets() -> dict[str, str]:
    """Every ``doc-test`` block of the tested files, by name."""
    found: dict[str, str] = {}
    for doc in DOCS:
        for match in MARKED.finditer((ROOT / doc).read_text()):
            name = match.group("name")
            if name:
                assert name not in found, f"two snippets named {name}"
                found[name] = textwrap.dedent(match.group("body"))  # a block inside a list item is indented
    return found


def snippet(name: str, **ports: int) -> str:
    """The block ``name``, with each ``old=new`` port replacement applied (each must occur in the block)."""
    code = snippets()[name]
    for old, new in ports.items():
        old_text = old.lstrip("_")
        assert old_text in code, f"snippet {name} no longer contains {old_text}: update the test's port mapping"
        code = code.replace(old_text, str(new))
    return code


def test_every_block_of_the_tested_docs_is_run_or_says_why_not() -> None:
    unmarked = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        marked = {m.start("indent") for m in MARKED.finditer(text)}
        unmarked += [f"{doc}:{text.count(chr(10), 0, m.start()) + 1}" for m in FENCE.finditer(text)
                     if m.start() not in marked]
    assert not unmarked, "fenced blocks without <!-- doc-test: name --> (run by this module) or " \
                         f"<!-- doc-untested: why --> on the line above: {', '.join(unmarked)}"


@dataclass
class Project:
    """The fresh project: the working directory (``venv``, ``ws4redis``, ``mysite``), the project's directory, the
    environment of a new shell, and the Redis its settings point at."""

    work: Path
    dir: Path
    env: dict[str, str]
    redis: RedisServer

    def sh(self, script: str, *, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        """Run ``script`` with bash in the project directory, the venv activated."""
        result = subprocess.run(["bash", "-ec", f". {self.work}/venv/bin/activate\n{script}"], cwd=self.dir,
                                env=self.env, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{script!r} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def shell(self, code: str) -> str:
        """Python code run by ``manage.py shell`` (stdin), as a user pastes it."""
        return self.sh("python manage.py shell", input=code)

    @contextlib.contextmanager
    def serve(self, script: str, port: int) -> Iterator[Served]:
        """Run a long-running ``script`` (its own process group, stopped by its id) until it listens on ``port``."""
        fd, path = tempfile.mkstemp(prefix="ws4redis-served-", suffix=".log", dir=self.work)
        served = Served(Path(path))
        with os.fdopen(fd, "w") as log:
            proc = subprocess.Popen(["bash", "-ec", f". {self.work}/venv/bin/activate\n{script}"], cwd=self.dir,
                                    env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(port, proc=proc, timeout=60)
            yield served
        except BaseException:
            print(served.output())
            raise
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)  # uWSGI: SIGINT stops, SIGTERM reloads
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@dataclass
class Served:
    """What a served script wrote (stdout and stderr), read after or while it runs."""

    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def scratch_dir() -> str | None:
    """Where the fresh venv and project go: a roomy tmpfs when there is one (a venv is ~10,000 files: writing and
    deleting them on a busy disk took half a minute), else the usual temporary directory."""
    with contextlib.suppress(OSError):
        if shutil.disk_usage("/dev/shm").free > 2 * 2**30:
            return "/dev/shm"
    return None


def clean_env() -> dict[str, str]:
    """The environment of a new shell: none of this test run's Django, Python path or virtualenv."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV", "WS4REDIS_TEST_OVERRIDES"}}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    """The README's quick start up to (not including) the server: venv, pip install, startproject, settings, page."""
    work = Path(tempfile.mkdtemp(prefix="ws4redis-first-hour-", dir=scratch_dir()))
    checkout = work / "ws4redis"  # "this repository checked out as ./ws4redis": only what the package is built from
    checkout.mkdir()
    for name in ("setup.py", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "ws4redis", checkout / "ws4redis", ignore=shutil.ignore_patterns("__pycache__"))
    redis = RedisServer()
    try:
        yield quick_start(work, redis)
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


def quick_start(work: Path, redis: RedisServer) -> Project:
    """Install and configure as the README says; add the pages of docs/client.md's snippets."""
    env = clean_env()
    install = subprocess.run(["bash", "-ec", snippet("readme-install")], cwd=work, env=env, capture_output=True,
                             text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
    project = Project(work, work / "mysite", env, redis)
    with open(project.dir / "mysite" / "settings.py", "a") as settings:
        settings.write("\n" + snippet("readme-settings", _6379=redis.port))
    with open(project.dir / "mysite" / "urls.py", "a") as urls:
        urls.write("\n" + snippet("readme-urls"))
    templates = project.dir / "templates"
    templates.mkdir()
    (templates / "chat.html").write_text(snippet("readme-page"))
    # Pages for docs/client.md's snippets (the test's own glue: the page functions the snippets name).
    (templates / "legacy.html").write_text(snippet("client-loading") + snippet("client-legacy"))
    (templates / "modern.html").write_text(
        "<script>function show(data) { console.log('show', data); }\nfunction banner(text) {}\n"
        "function reloadFromServer() {}</script>\n" + snippet("client-modern"))
    with open(project.dir / "mysite" / "urls.py", "a") as urls:
        urls.write('\nurlpatterns += [path("legacy/", TemplateView.as_view(template_name="legacy.html")),\n'
                   '                path("modern/", TemplateView.as_view(template_name="modern.html"))]\n')
    return project


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


class Tab:
    """A page in its own browser context, with its console and errors recorded."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context()
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def logged(self, text: str, kind: str = "log") -> bool:
        return any(t == kind and text in m for t, m in self.console)

    def wait_logged(self, text: str, kind: str = "log") -> None:
        """Wait (on the page's console events, no sleep) until ``text`` was logged."""
        deadline_ms = TIMEOUT_MS
        while not self.logged(text, kind):
            assert not self.errors, self.errors
            assert deadline_ms > 0, f"{text!r} never logged; console: {self.console}"
            with contextlib.suppress(Exception):
                self.page.wait_for_event("console", timeout=min(deadline_ms, 1000))
            deadline_ms -= 1000

    def login(self, base: str, username: str, password: str) -> None:
        """Log in through the admin's login form, as the README suggests."""
        self.page.goto(f"{base}/admin/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        with self.page.expect_navigation():
            self.page.click("input[type=submit]")

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def site(project: Project) -> Iterator[str]:
    """The quick start's uWSGI command, as printed (port aside), and a user ``alice`` to log in as."""
    port = free_port()
    with project.serve(snippet("readme-run", _8000=port), port):
        project.sh("DJANGO_SUPERUSER_PASSWORD=pw-alice-1 python manage.py createsuperuser --noinput "
                   "--username alice --email alice@example.com")
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def tabs(browser: Any) -> Iterator[Callable[[], Tab]]:
    """New tabs, each in its own browser context, closed after the test."""
    opened: list[Tab] = []

    def new() -> Tab:
        opened.append(Tab(browser))
        return opened[-1]

    yield new
    for tab in opened:
        tab.close()


def console_errors(*tabs: Tab) -> list[str]:
    """Errors on the pages' consoles, the favicon's 404 aside (startproject has none)."""
    return [m for tab in tabs for t, m in tab.console if t == "error" and "Failed to load resource" not in m]


def test_readme_quick_start_on_uwsgi(project: Project, site: str, tabs: Callable[[], Tab]) -> None:
    """The quick start as printed: uWSGI serves the page, ws4redis.js (static-map) and the websocket; a publish from
    ``manage.py shell`` reaches the anonymous page; the logged-in page also gets its user's message, the anonymous
    one never does."""
    anonymous, alice = tabs(), tabs()
    with anonymous.page.expect_response(lambda r: r.url.endswith("/static/ws4redis/ws4redis.js")) as script:
        anonymous.page.goto(f"{site}/chat/")
    assert script.value.status == 200
    alice.login(site, "alice", "pw-alice-1")
    alice.page.goto(f"{site}/chat/")
    project.shell(snippet("readme-publish"))
    anonymous.wait_logged("hello everyone")
    alice.wait_logged("hello everyone")
    request = ("from django.contrib.auth import get_user_model\nfrom django.test import RequestFactory\n"
               "request = RequestFactory().get('/')\n"
               "request.user = get_user_model().objects.get(username='alice')\n")
    project.shell(snippet("readme-publish") + request + snippet("readme-publish-view"))
    alice.wait_logged("str works too")
    project.shell(snippet("readme-publish").replace("hello everyone", "after alice's"))
    anonymous.wait_logged("after alice's")
    assert not anonymous.logged("str works too")
    assert anonymous.errors == alice.errors == []
    assert console_errors(anonymous, alice) == []


def test_a_refused_page_says_why_on_the_console_and_backs_off(site: str, tabs: Callable[[], Tab]) -> None:
    """The old README page (``subscribe-user`` for everyone) opened anonymously: every handshake is refused with 403,
    which the browser hides; the client says why on the console and waits at least half its cap (15 s)."""
    tab = tabs()
    tab.page.goto(f"{site}/chat/")
    tab.page.evaluate("""() => {
      window.closes = [];
      const client = WS4Redis({uri: 'ws://' + location.host + '/ws/chat?subscribe-broadcast&subscribe-user'});
      client.on('close', (info) => window.closes.push(info.delay));
    }""")
    tab.wait_logged("closed 3 times without ever opening", "error")
    (advice,) = [m for t, m in tab.console if t == "error" and "WS4Redis" in m]
    assert "subscribe-user needs a logged-in user" in advice
    assert tab.page.evaluate("() => window.closes.length") == 3
    assert tab.page.evaluate("() => window.closes[2]") >= 15_000


def publish(project: Project, facility: str, text: str) -> None:
    """A broadcast published from ``manage.py shell``: the README's publish snippet on another facility and text."""
    code = snippet("readme-publish")
    assert 'facility="chat"' in code and '"hello everyone"' in code
    project.shell(code.replace('facility="chat"', f"facility={facility!r}").replace('"hello everyone"', repr(text)))


def test_client_md_original_api_page(project: Project, site: str, tabs: Callable[[], Tab]) -> None:
    """docs/client.md's loading block and original-API page, logged in: ``send_message`` right after ``WS4Redis()``
    is sent once open (its echo comes back), a server publish arrives, then the listed methods close it for good."""
    tab = tabs()
    tab.login(site, "alice", "pw-alice-1")
    tab.page.goto(f"{site}/legacy/")
    tab.wait_logged("received A message")
    publish(project, "foobar", "from the server")
    tab.wait_logged("received from the server")
    tab.page.evaluate("() => {\n" + snippet("client-legacy-methods") + "\n}")
    tab.wait_logged("disconnected 1000")
    assert tab.page.evaluate("() => ws4redis.is_closing() || ws4redis.is_closed()")
    assert [m for t, m in tab.console if t == "log"][:3] == ["connecting", "connected", "received A message"]
    assert tab.errors == [] and console_errors(tab) == []


def test_client_md_modern_module_runs_to_the_end(project: Project, site: str, tabs: Callable[[], Tab]) -> None:
    """docs/client.md's modern snippet as a module, for a logged-in user in no group: it goes through every line
    (``subscribe('group')`` included) to the reconnect to ``news`` and ``close()``, and a published message reaches
    ``show``."""
    publish(project, "chat", "kept for the modern page")  # kept (WS4REDIS_EXPIRE): sent to the page at connect
    tab = tabs()
    tab.login(site, "alice", "pw-alice-1")
    with tab.page.expect_websocket(lambda ws: "/ws/news" in ws.url) as news:
        tab.page.goto(f"{site}/modern/")
    news.value.wait_for_event("close")
    tab.wait_logged("show kept for the modern page")
    assert tab.errors == [] and console_errors(tab) == []


def receive_published(project: Project, port: int, facility: str) -> None:
    """A websocket client on ``port`` gets a broadcast published from ``manage.py shell``."""
    import websocket

    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/{facility}?subscribe-broadcast", timeout=10)
    try:
        publish(project, facility, f"to {facility} on {port}")
        assert ws.recv() == f"to {facility} on {port}"
    finally:
        ws.close()


def test_servers_md_runserver_serves_pages_static_files_and_websockets(project: Project, site: str) -> None:
    """docs/servers.md's runserver line in the README's project: its banner as printed, ws4redis.js, a websocket."""
    import urllib.request

    port = free_port()
    with project.serve(snippet("servers-runserver", _8000=port), port) as served:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/ws4redis/ws4redis.js", timeout=10) as response:
            assert b"WS4Redis" in response.read()
        receive_published(project, port, "runserver")
    banner = snippet("servers-runserver-banner", _8000=port).strip()
    assert banner in served.output().splitlines(), served.output()  # the whole line, as printed


def test_servers_md_runwebsocket(project: Project, site: str) -> None:
    port = free_port()
    with project.serve(snippet("servers-runwebsocket", _8001=port), port) as served:
        receive_published(project, port, "split")
    assert "Traceback" not in served.output()


def test_servers_md_testing_kit_example(project: Project) -> None:
    """docs/servers.md's test module, run by pytest-django in the README's project, with the ``/orders/`` view it
    names (the test's glue: a view publishing "order received" to its caller)."""
    project.sh(snippet("servers-testing-kit-install"))
    (project.dir / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = mysite.settings\n")
    with open(project.dir / "mysite" / "urls.py", "a") as urls:
        urls.write(
            "\nfrom django.http import HttpResponse\nfrom ws4redis.publisher import RedisPublisher\n"
            "from ws4redis.redis_store import SELF\n\n\ndef orders(request):\n"
            "    RedisPublisher(facility='orders', users=[SELF], request=request).publish_message('order received')\n"
            "    return HttpResponse('received')\n\n\nurlpatterns += [path('orders/', orders)]\n")
    (project.dir / "test_notifications.py").write_text(snippet("servers-testing-kit"))
    output = project.sh("python -m pytest -q -p no:cacheprovider test_notifications.py", timeout=180)
    assert "3 passed" in output, output


def test_migration_md_settings_of_a_06_project_keep_their_meaning(project: Project) -> None:
    """docs/migration.md's 0.6 settings on the README's project: the dict connection, the prefix and expiry of kept
    messages, the heartbeat echoed on the legacy protocol."""
    import websocket

    (project.dir / "mysite" / "settings_06.py").write_text(
        "from .settings import *  # noqa\n" + snippet("migration-settings", _6379=project.redis.port))
    use = "export DJANGO_SETTINGS_MODULE=mysite.settings_06\n"
    project.sh(use + "python manage.py check")
    port = free_port()
    with project.serve(use + f"python manage.py runwebsocket --bind 127.0.0.1:{port}", port):
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/migrated?subscribe-broadcast", timeout=10)
        try:
            ws.send("--heartbeat--")
            assert ws.recv() == "--heartbeat--"
            project.sh(use + "python manage.py shell", input=(
                "from ws4redis.publisher import RedisPublisher\n"
                "RedisPublisher(facility='migrated', broadcast=True).publish_message('kept in ws:')\n"))
            assert ws.recv() == "kept in ws:"
        finally:
            ws.close()
    redis = project.redis.client()
    try:
        assert redis.get("ws:broadcast:migrated") == b"kept in ws:"
        assert 7000 < redis.ttl("ws:broadcast:migrated") <= 7200
    finally:
        redis.close()
