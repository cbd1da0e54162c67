"""The chatserver demo end to end: ``run_demo.py`` starts everything, Chromium (Playwright) drives three people.

What is checked is what a newcomer would check by hand: everyone sees the room, only the addressee sees a direct
message, only members see a group message, a Celery job's progress reaches the user who started it, and the
dashboard's tiles are live and turn stale when their source (the metrics publisher) is stopped while the link and
the worker's tile stay live. Screenshots land in ``test-output/`` at the repository root for a reviewer.

Synchronisation is by awaited events (Playwright's auto-waiting expectations, the demo's READY line); absence is
asserted only after a later message, published after the one that must not arrive, has arrived.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT, free_port

playwright_sync = pytest.importorskip("playwright.sync_api")
pytest.importorskip("celery")
expect = playwright_sync.expect

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
OUTPUT = ROOT / "test-output"
PASSWORD = "ws4redis-demo"


class RunningDemo:
    """``run_demo.py`` in a temporary state directory on free ports; stopped by its pid, which stops its children."""

    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="ws4redis-demo-"))
        self.address = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.address}/"
        self.log = self.state / "run_demo.out"
        env = dict(os.environ, CHATSERVER_JOB_STEP_SECONDS="0.1", PYTHONUNBUFFERED="1")
        env.pop("DJANGO_SETTINGS_MODULE", None)  # the test process' settings are not the demo's
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "examples/chatserver/run_demo.py"), "--http", self.address,
                 "--state-dir", str(self.state)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )
        self._await_ready(timeout=90)

    def _await_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if "READY " in text:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"run_demo.py exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.1)
        raise TimeoutError(f"run_demo.py not ready after {timeout}s:\n{self.log.read_text(errors='replace')}")

    def pids(self) -> dict[str, int]:
        return dict(json.loads((self.state / "demo.json").read_text())["pids"])

    def stop(self) -> list[int]:
        """SIGTERM to run_demo.py (what Ctrl-C does); returns the children's pids still alive afterwards."""
        children = self.pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return [pid for pid in children.values() if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningDemo]:
    running = RunningDemo()
    yield running
    left = running.stop()
    assert left == [], f"run_demo.py left processes running: {left}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", autouse=True)
def _output_dir() -> None:
    OUTPUT.mkdir(exist_ok=True)


def sign_in(browser: Any, demo: RunningDemo, username: str) -> Any:
    """A fresh browser context (its own cookies) signed in as ``username``, on the chat page."""
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    page = context.new_page()
    page.goto(demo.url + "login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/chat/")
    expect(page.locator("#link-indicator")).to_have_attribute("data-state", "open")
    return page


def say(page: Any, conversation: str, text: str) -> None:
    page.click(f'.conv[data-conv="{conversation}"]')
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")
    expect(page.locator("#composer-text")).to_have_value("")  # the view accepted it


def lines(page: Any, conversation: str) -> Any:
    return page.locator(f'ol[data-conv="{conversation}"] .text')


def test_chat_who_sees_what(browser: Any, demo: RunningDemo) -> None:
    alice, bob, carol = (sign_in(browser, demo, name) for name in ("alice", "bob", "carol"))

    # The room (broadcast): everyone.
    say(alice, "room:lobby", "Good morning, everyone!")
    for page in (alice, bob, carol):
        expect(lines(page, "room:lobby")).to_have_text(["Good morning, everyone!"])

    # Direct (user audience): bob and alice's own page, not carol.
    say(alice, "direct:bob", "Bob, the deploy is at 3pm.")
    expect(bob.locator('.conv[data-conv="direct:alice"] .badge')).to_have_text("1")
    expect(lines(bob, "direct:alice")).to_have_text(["Bob, the deploy is at 3pm."])
    expect(lines(alice, "direct:bob")).to_have_text(["Bob, the deploy is at 3pm."])
    say(bob, "direct:alice", "Thanks, I'll be there.")
    expect(lines(alice, "direct:bob")).to_have_text(["Bob, the deploy is at 3pm.", "Thanks, I'll be there."])

    # Group (group audience): members alice and bob; carol is in no group and has no such conversation.
    say(bob, "group:ops", "Ops: rotating the Redis password tonight.")
    expect(lines(alice, "group:ops")).to_have_text(["Ops: rotating the Redis password tonight."])
    expect(lines(bob, "group:ops")).to_have_text(["Ops: rotating the Redis password tonight."])
    assert carol.locator('.conv[data-conv="group:ops"]').count() == 0

    # A later broadcast reaches carol after everything above was published: only now is absence meaningful.
    say(alice, "room:lobby", "Standup in 5 minutes.")
    expect(lines(carol, "room:lobby")).to_have_text(["Good morning, everyone!", "Standup in 5 minutes."])
    assert carol.locator('ol[data-conv^="direct:"] .text, ol[data-conv^="group:"] .text').count() == 0
    assert carol.get_by_text("deploy is at 3pm").count() == 0
    assert carol.get_by_text("rotating the Redis password").count() == 0

    # A non-member cannot post to the group either: the view refuses, whatever the page sends.
    refused = carol.evaluate(
        "() => demo.post('/chat/send/', {mode: 'group', to: 'ops', text: 'let me in'})"
        ".then(() => 'sent', e => e.message)"
    )
    assert refused == "you are not a member of this group"

    bob.click('.conv[data-conv="direct:alice"]')
    alice.click('.conv[data-conv="room:lobby"]')
    alice.screenshot(path=str(OUTPUT / "chat-alice-lobby.png"))
    bob.screenshot(path=str(OUTPUT / "chat-bob-direct.png"))
    for page in (alice, bob, carol):
        page.context.close()


def test_celery_progress_reaches_only_its_user(browser: Any, demo: RunningDemo) -> None:
    alice, bob = sign_in(browser, demo, "alice"), sign_in(browser, demo, "bob")
    for page in (alice, bob):
        page.goto(demo.url + "jobs/")
        expect(page.locator("#link-indicator")).to_have_attribute("data-state", "open")
    alice.fill("#job-title", "Quarterly capacity report")
    alice.click("#start-job")
    job = alice.locator(".job").first
    expect(job.locator(".bar")).not_to_have_attribute("aria-valuenow", "0")  # progress arrives while it runs
    expect(job).to_have_attribute("data-state", "running")
    expect(job).to_have_attribute("data-state", "done", timeout=30_000)
    expect(job.locator(".bar")).to_have_attribute("aria-valuenow", "100")
    expect(job.locator(".job-title")).to_have_text("Quarterly capacity report")
    alice.screenshot(path=str(OUTPUT / "jobs-alice.png"))
    assert bob.locator(".job").count() == 0
    for page in (alice, bob):
        page.context.close()


def test_dashboard_tiles_live_then_stale_when_publisher_stops(browser: Any, demo: RunningDemo) -> None:
    page = sign_in(browser, demo, "alice")
    page.goto(demo.url + "dashboard/")
    tiles = {key: page.locator(f'.tile[data-tile="{key}"]') for key in ("link", "host", "redis", "chat", "worker")}
    for tile in tiles.values():
        expect(tile).to_have_attribute("data-state", "live", timeout=15_000)
    expect(tiles["link"].locator("[data-field=rtt]")).to_have_text(_number())  # a heartbeat round trip measured
    expect(tiles["host"].locator(".value")).to_have_text(_number())
    expect(tiles["host"].locator(".age")).to_contain_text("updated")
    first_age = tiles["redis"].get_attribute("data-age")
    page.screenshot(path=str(OUTPUT / "dashboard-live.png"), full_page=True)

    # Stop the publisher (a child of run_demo.py, found in its state file): its tiles go stale, while this page's
    # link and the worker's own tile stay live, which is how an operator tells a dead source from a dead link.
    publisher = demo.pids()["metrics"]
    os.kill(publisher, signal.SIGTERM)
    for key in ("host", "redis", "chat"):
        expect(tiles[key]).to_have_attribute("data-state", "stale", timeout=10_000)
    expect(tiles["link"]).to_have_attribute("data-state", "live")
    expect(tiles["worker"]).to_have_attribute("data-state", "live")
    assert int(tiles["redis"].get_attribute("data-age") or 0) > int(first_age or 0)
    page.screenshot(path=str(OUTPUT / "dashboard-stale.png"), full_page=True)
    page.context.close()


def _number() -> Any:
    import re

    return re.compile(r"^\d+(\.\d+)?$")
