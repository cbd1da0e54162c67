"""What a new user meets in the first hour (issue 20), one test per defect, on the test project.

The same steps as printed in the README and docs are run on a fresh ``startproject`` by ``tests/test_docs_snippets.py``;
these tests pin each behaviour on its own, with the test project's real servers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import websocket
from django.core import checks
from django.test import Client, override_settings

from tests.conftest import connect
from tests.gevent_servers import RunserverProcess
from tests.servers import UwsgiServer
from ws4redis.install_checks import W001
from ws4redis.publisher import RedisPublisher

APPS_AFTER = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
              "django.contrib.staticfiles", "ws4redis"]
APPS_BEFORE = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions", "ws4redis",
               "django.contrib.staticfiles"]


def ws4redis_warnings() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks() if m.id == W001]


def test_check_says_what_to_change_when_staticfiles_runserver_would_win() -> None:
    with override_settings(INSTALLED_APPS=APPS_AFTER):
        (warning,) = ws4redis_warnings()
    assert warning.level == checks.WARNING
    assert 'Put "ws4redis" before "django.contrib.staticfiles"' in str(warning.hint)
    with override_settings(INSTALLED_APPS=APPS_BEFORE):
        assert ws4redis_warnings() == []
    with override_settings(INSTALLED_APPS=[a for a in APPS_AFTER if a != "django.contrib.staticfiles"]):
        assert ws4redis_warnings() == []


def test_staticfiles_runserver_prints_the_fix_at_start(redis_server: Any, transactional_db: Any) -> None:
    """The runserver that runs is staticfiles' (no websockets): its start-up checks name the fix."""
    server = RunserverProcess(overrides={"INSTALLED_APPS": APPS_AFTER, "DEBUG": True, "STATIC_URL": "/static/"})
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:  # Django's 404 page, no websocket
            connect(server, "/ws/chat?subscribe-broadcast")  # type: ignore[arg-type]
        assert refused.value.status_code == 404
    finally:
        server.stop()
    assert "ws4redis.W001" in server.output()
    assert 'INSTALLED_APPS = ["ws4redis", *INSTALLED_APPS]' in server.output()


def test_subscribing_group_for_a_user_in_no_group_is_granted_with_nothing_to_listen(
        server: UwsgiServer, transactional_db: Any) -> None:
    """As at connect (``?subscribe-group`` is accepted for a user in no group): the in-band ``subscribe`` resolves,
    and its answer names only the audiences that listen to something; the socket keeps what it had."""
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.create_user("dave"))
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    ws = connect(server, "/ws/chat?subscribe-broadcast&subscribe-user", cookie=cookie, subprotocols=["ws4redis.v2"])
    assert json.loads(ws.recv())["type"] == "welcome"
    ws.send(json.dumps({"type": "subscribe", "facility": "chat", "audiences": ["group"]}))
    assert json.loads(ws.recv()) == {"type": "subscribed", "facility": "chat", "audiences": []}
    ws.send(json.dumps({"type": "subscribe", "facility": "chat", "audiences": ["group", "broadcast"]}))
    assert json.loads(ws.recv()) == {"type": "subscribed", "facility": "chat", "audiences": ["broadcast"]}
    RedisPublisher(facility="chat", users=["dave"]).publish_message("still yours")
    assert json.loads(ws.recv())["data"] == "still yours"


def test_a_hook_that_allows_nothing_is_named_in_the_refusal(uwsgi_factory: Any, people: Any) -> None:
    server = uwsgi_factory({"WS4REDIS_ALLOWED_CHANNELS": "tests.project.hooks.only_broadcast"})
    ws = connect(server, "/ws/a?subscribe-broadcast", cookie=people.cookie("bob"), subprotocols=["ws4redis.v2"])
    assert json.loads(ws.recv())["type"] == "welcome"
    ws.send(json.dumps({"type": "subscribe", "facility": "b", "audiences": ["user"]}))
    answer = json.loads(ws.recv())
    assert answer["type"] == "error"
    assert answer["reason"] == "WS4REDIS_ALLOWED_CHANNELS allows none of subscribe-user on 'b'"


def test_idle_websockets_hold_no_gevent_core(uwsgi_factory: Any) -> None:
    """docs/deployment.md: ``gevent = N`` bounds concurrent requests, not open websockets (an idle one holds no
    greenlet): five times more sockets than cores open, all get a publish, and a page is still answered."""
    import urllib.error
    import urllib.request

    server = uwsgi_factory(gevent=4)
    sockets = [connect(server, "/ws/cores?subscribe-broadcast") for _ in range(20)]
    RedisPublisher(facility="cores", broadcast=True).publish_message("to all twenty")
    assert [ws.recv() for ws in sockets] == ["to all twenty"] * 20
    with pytest.raises(urllib.error.HTTPError) as page:  # the test project has no page at /: Django's 404
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/no-such-page", timeout=5)
    page.value.close()
    assert page.value.code == 404


def test_nginx_comment_says_what_its_map_does() -> None:
    """nginx/ws4redis.conf: the comment above the Connection map names the value the map sets for plain requests."""
    from tests.servers import ROOT

    text = (ROOT / "nginx" / "ws4redis.conf").read_text()
    comment, _, rest = text.partition("map $http_upgrade $ws4redis_connection {")
    plain = rest.split("''", 1)[1].split(";", 1)[0].strip()
    last_comment = comment.strip().split("\n\n")[-1]
    assert plain == "close"
    assert "close otherwise" in last_comment and "keep-alive" not in last_comment
