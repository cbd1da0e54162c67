"""``ws4redis.testing``: the publish capture, the websocket test client, and the live-server test case.

The live-server case monkey-patches its process for gevent, so its example runs in a pytest subprocess of its own
(with its own test database), never in this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import People
from tests.servers import ROOT, RedisServer
from ws4redis import wire
from ws4redis.publisher import RedisPublisher
from ws4redis.testing import Published, capture_published


def test_capture_records_a_views_publishes(people: People, redis_server: RedisServer) -> None:
    """Nothing the view publishes reaches Redis (logging in does: the core publishes session revocations)."""
    from django.test import Client

    client = Client()
    client.force_login(people.users["bob"])
    with capture_published() as outbox:
        assert client.get("/publish/").content == b"published"
    assert outbox.messages(audience="user", target="bob", facility="views") == ["from a view"]
    (session,) = outbox.filter(audience="session")
    assert session.target == client.session.session_key
    assert outbox.filter(audience="user", target="alice") == []


def test_capture_sees_every_audience_and_the_heartbeat_publishes_nothing(settings: Any) -> None:
    with capture_published() as outbox:
        RedisPublisher(facility="f", broadcast=True, users=["u"], groups=["g"]).publish_message("hi", expire=7)
        RedisPublisher(facility="f", broadcast=True).publish_message(settings.WS4REDIS_HEARTBEAT)
    assert sorted((p.audience, p.target) for p in outbox) == [("broadcast", None), ("group", "g"), ("user", "u")]
    assert {p.expire for p in outbox} == {7}
    assert Published("test:broadcast:f", b"x", 0).facility == "f"


def test_capture_with_deliver_still_publishes(redis_server: RedisServer) -> None:
    client = redis_server.client()
    pubsub = client.pubsub()
    pubsub.subscribe("test:broadcast:both")
    pubsub.get_message(timeout=1)
    with capture_published(deliver=True) as outbox:
        assert RedisPublisher(facility="both", broadcast=True).publish_message("seen twice") == 1
    message = pubsub.get_message(timeout=5)
    assert message is not None and wire.decode(message["data"]) == wire.Record(b"seen twice", True, None, False)
    assert outbox.messages() == ["seen twice"]
    pubsub.close()
    client.close()


EXAMPLE = '''
from django.contrib.auth.models import User

from ws4redis.publisher import RedisPublisher
from ws4redis.testing import WebsocketLiveServerTestCase, WebsocketRefused, capture_published


class NotificationTests(WebsocketLiveServerTestCase):
    def setUp(self):
        self.bob = User.objects.create_user("bob", password="pw")

    def test_bob_receives_his_notifications(self):
        with self.websocket_client(self.bob).connect("inbox", "subscribe-user") as bob:
            RedisPublisher(facility="inbox", users=["bob"]).publish_message("hello bob")
            self.assertEqual(bob.receive(), "hello bob")
            bob.assert_no_message()

    def test_anonymous_clients_are_refused_user_channels(self):
        with self.assertRaises(WebsocketRefused) as refused:
            self.websocket_client().connect("inbox", "subscribe-user")
        self.assertEqual(refused.exception.status, 403)

    def test_pages_and_websockets_share_the_live_server(self):
        import urllib.request

        with urllib.request.urlopen(self.live_server_url + "/") as response:
            self.assertEqual(response.read(), b"django page")
        with capture_published(deliver=True) as outbox:
            with self.websocket_client(self.bob).connect("views", "subscribe-user") as bob:
                self.client.force_login(self.bob)
                self.client.get("/publish/")
                self.assertEqual(bob.receive(), "from a view")
        self.assertEqual(outbox.messages(audience="user", target="bob"), ["from a view"])
'''


def test_live_server_test_case_example(redis_server: RedisServer) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ws4redis-kit-"))
    (workdir / "test_example.py").write_text(textwrap.dedent(EXAMPLE))
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.project.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(workdir)]),
        "WS4REDIS_TEST_DB": str(workdir / "db.sqlite3"),  # never the parent run's test database
        "WS4REDIS_TEST_OVERRIDES": '{"STATIC_URL": "/static/"}',  # LiveServerTestCase serves static files
    })
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
         "--rootdir", str(workdir), "-c", os.devnull, "-p", "pytest_django", str(workdir / "test_example.py")],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


@pytest.mark.parametrize("flags", [(), ("subscribe-broadcast",)])
def test_client_builds_the_url(flags: tuple[str, ...]) -> None:
    from ws4redis.testing import WebsocketTestClient

    client = WebsocketTestClient("http://127.0.0.1:1")
    with pytest.raises(OSError):
        client.connect("f", *flags)
