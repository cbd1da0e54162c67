"""The chatserver demo's presence (``examples/chatserver/chatserver/presence.py``), in Chromium: who is online in the
chat, and an "unread messages" email (console backend, in uWSGI's log) for someone away when a direct message comes.

Synchronisation is by awaited events (Playwright's expectations); the email is written by the view's own publish
(``if_offline`` runs before the view answers), so once the composer is cleared the log holds it, or never will.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_demo import OUTPUT, RunningDemo, expect, say, sign_in
from tests.test_demo import browser as browser  # the module-scoped Chromium fixture, shared by name

pytestmark = pytest.mark.browser

ONLINE = re.compile(r"\bonline\b")
GRACE_MS = 5000  # WS4REDIS_PRESENCE_GRACE of the demo's settings


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningDemo]:
    running = RunningDemo()
    yield running
    assert running.stop() == []


def emails(demo: RunningDemo) -> list[str]:
    text = (demo.state / "logs" / "uwsgi.log").read_text(errors="replace")
    return re.findall(r"Subject: You have unread messages\nFrom: [^\n]+\nTo: ([^\n]+)", text)


def test_the_chat_shows_who_is_online_and_emails_whoever_is_away(browser: Any, demo: RunningDemo) -> None:
    OUTPUT.mkdir(exist_ok=True)
    alice = sign_in(browser, demo, "alice")
    dot = 'button[data-conv="direct:{}"] .presence'
    expect(alice.locator(dot.format("bob"))).not_to_have_class(ONLINE)
    bob = sign_in(browser, demo, "bob")
    expect(alice.locator(dot.format("bob"))).to_have_class(ONLINE)  # bob's user_online, broadcast to the room
    expect(bob.locator(dot.format("alice"))).to_have_class(ONLINE)  # rendered by the view
    expect(alice.locator(dot.format("carol"))).not_to_have_class(ONLINE)
    alice.screenshot(path=str(OUTPUT / "chat-presence.png"))

    say(alice, "direct:bob", "Bob, are you around?")  # bob has the chat open: no email
    assert emails(demo) == []
    say(alice, "direct:carol", "Carol, the report is ready.")  # carol has no chat page anywhere: one email
    assert emails(demo) == ["carol@example.com"]
    say(alice, "direct:carol", "And the slides.")  # one notice per window, however many messages
    assert emails(demo) == ["carol@example.com"]

    bob.context.close()  # bob's last tab: away once the grace is over, not before
    expect(alice.locator(dot.format("bob"))).not_to_have_class(ONLINE, timeout=GRACE_MS + 10000)
