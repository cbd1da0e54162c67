"""Live HTML without a browser: the markup of every action, escaping, one render per publish, signatures, the tags.

The publishing tests use a real redis-server and read what a subscriber of each channel receives.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory, override_settings
from django.test.signals import template_rendered
from django.utils.safestring import mark_safe

from ws4redis import fragments, streams, wire
from ws4redis.audience import parse_flags
from ws4redis.exceptions import ChannelRefused
from ws4redis.publisher import RedisPublisher

ROW = "live/row.html"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", {
        ROW: '<tr id="incident-{{ pk }}"><td>{{ title }}</td></tr>',
        "live/item.html": "<li>{{ title }}</li>",
    })]},
}]

EVIL = '<script>alert("x")</script>&'
EVIL_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;"


@pytest.fixture(autouse=True)
def _templates() -> Iterator[None]:
    with override_settings(TEMPLATES=TEMPLATES, WS4REDIS_SIGNED_STREAMS=["incident-*"], ALLOWED_HOSTS=["*"]):
        yield


def test_every_turbo_action() -> None:
    item = {"template": "live/item.html", "context": {"title": "a"}}
    for action in ("append", "prepend", "replace", "update", "before", "after"):
        assert fragments.turbo_stream(action, target="list", **item) == (
            f'<turbo-stream action="{action}" target="list"><template><li>a</li></template></turbo-stream>'
        )
    assert fragments.turbo_stream("append", targets=".lists > ul", **item) == (
        '<turbo-stream action="append" targets=".lists &gt; ul"><template><li>a</li></template></turbo-stream>'
    )
    assert fragments.turbo_stream("remove", target="incident-7") == (
        '<turbo-stream action="remove" target="incident-7"></turbo-stream>'
    )
    assert fragments.turbo_stream("remove", targets=".done") == (
        '<turbo-stream action="remove" targets=".done"></turbo-stream>'
    )


def test_every_htmx_action() -> None:
    item = {"template": "live/item.html", "context": {"title": "a"}}
    styles = {"append": "beforeend", "prepend": "afterbegin", "update": "innerHTML", "before": "beforebegin",
              "after": "afterend"}
    for action, style in styles.items():
        assert fragments.htmx_oob(action, target="list", **item) == (
            f'<div hx-swap-oob="{style}:#list"><li>a</li></div>'
        )
    # Table rows get a parent the HTML parser keeps them in; replace marks the row itself.
    row = {"template": ROW, "context": {"pk": 7, "title": "a"}}
    assert fragments.htmx_oob("append", target="rows", **row) == (
        '<tbody hx-swap-oob="beforeend:#rows"><tr id="incident-7"><td>a</td></tr></tbody>'
    )
    assert fragments.htmx_oob("replace", target="incident-7", **row) == (
        '<tr hx-swap-oob="outerHTML:#incident-7" id="incident-7"><td>a</td></tr>'
    )
    assert fragments.htmx_oob("replace", targets="tr.stale", **row) == (
        '<tr hx-swap-oob="outerHTML:tr.stale" id="incident-7"><td>a</td></tr>'
    )
    assert fragments.htmx_oob("remove", target="incident-7") == '<div hx-swap-oob="delete:#incident-7"></div>'
    # An id CSS must escape (htmx looks targets up with querySelectorAll).
    assert fragments.htmx_oob("remove", target="7:a") == '<div hx-swap-oob="delete:#\\37 \\:a"></div>'
    assert fragments.htmx_oob("remove", target="-1.5") == '<div hx-swap-oob="delete:#-\\31 \\.5"></div>'


def test_mistakes_fail_at_publish_time_not_silently_in_the_browser() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        fragments.turbo_stream("morph", target="x", html="")
    with pytest.raises(ValueError, match="either target"):
        fragments.htmx_oob("append", target="x", targets=".x", html="")
    with pytest.raises(ValueError, match="without whitespace"):
        fragments.turbo_stream("append", target="a b", html="")
    with pytest.raises(ValueError, match="exactly one top-level element"):
        fragments.htmx_oob("replace", target="x", html=mark_safe("<p>a</p><p>b</p>"))
    with pytest.raises(ValueError, match="no content"):
        fragments.turbo_stream("remove", target="x", html="a")
    # htmx's parser drops a row that follows a <div> in one message (seen in Chromium): refused where published.
    row = fragments.htmx_oob("append", target="rows", html=mark_safe("<tr><td>1</td></tr>"))
    with pytest.raises(ValueError, match="message of their own"):
        fragments.publish([fragments.htmx_oob("remove", target="x"), row], facility="board", broadcast=True)


def test_user_data_is_escaped() -> None:
    row = {"template": ROW, "context": {"pk": 1, "title": EVIL}}
    for markup in (fragments.turbo_stream("append", target="rows", **row),
                   fragments.htmx_oob("append", target="rows", **row),
                   fragments.htmx_oob("replace", target="incident-1", **row)):
        assert EVIL not in markup and EVIL_ESCAPED in markup
    # A plain str given as html= is text, not markup; a target cannot break out of its attribute.
    assert fragments.turbo_stream("update", target='x"><script>', html=EVIL) == (
        '<turbo-stream action="update" target="x&quot;&gt;&lt;script&gt;"><template>'
        f"{EVIL_ESCAPED}</template></turbo-stream>"
    )
    assert EVIL_ESCAPED in fragments.htmx_oob("update", targets='"><b', html=EVIL)
    assert 'hx-swap-oob="innerHTML:&quot;&gt;&lt;b"' in fragments.htmx_oob("update", targets='"><b', html="t")


class CountingRedis(redis.Redis):
    """A client counting round trips: single commands and pipeline executions."""

    round_trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        CountingRedis.round_trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        original = pipe.execute

        def execute(*args: Any, **kwargs: Any) -> Any:
            CountingRedis.round_trips += 1
            return original(*args, **kwargs)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


def test_one_render_and_one_round_trip_for_many_audiences(redis_server: Any) -> None:
    from django.conf import settings

    client = CountingRedis(host="127.0.0.1", port=settings.REDIS_PORT)
    listener = redis_server.client()
    pubsub = listener.pubsub()
    pubsub.subscribe("test:broadcast:board", "test:user:user-42:board", "test:group:g-3:incident-9")
    for _ in range(3):
        pubsub.get_message(timeout=5)  # the three subscribe confirmations
    renders: list[Any] = []
    template_rendered.connect(lambda **kw: renders.append(kw["template"]), weak=False, dispatch_uid="count")
    try:
        CountingRedis.round_trips = 0
        markup = fragments.turbo_stream("append", target="rows", template=ROW, context={"pk": 9, "title": EVIL})
        count = fragments.publish(
            markup,
            RedisPublisher(connection=client, facility="board", broadcast=True,
                           users=[f"user-{i}" for i in range(100)]),
            RedisPublisher(connection=client, facility="incident-9", groups=[f"g-{i}" for i in range(10)],
                           sessions=["s1", "s2"]),
            expire=60,
        )
    finally:
        template_rendered.disconnect(dispatch_uid="count")
    assert len(renders) == 1
    assert CountingRedis.round_trips == 1
    assert count == 1 + 100 + 10 + 2
    received = [pubsub.get_message(timeout=5) for _ in range(3)]
    assert {m["channel"] for m in received if m} == {b"test:broadcast:board", b"test:user:user-42:board",
                                                      b"test:group:g-3:incident-9"}
    assert all(m and wire.decode(m["data"]) == wire.Record(markup.encode(), True, None, False) for m in received)
    # The kept message a (re)connecting page gets is that same fragment.
    assert RedisPublisher().fetch_message(RequestFactory().get("/"), "board", "broadcast") == markup.encode()
    pubsub.close()
    listener.close()
    client.close()


def test_publish_on_commit_renders_nothing_on_rollback(redis_server: Any, transactional_db: Any) -> None:
    from django.db import transaction

    calls: list[int] = []

    def build() -> str:
        calls.append(1)
        return fragments.turbo_stream("remove", target="incident-1")

    with pytest.raises(RuntimeError), transaction.atomic():
        fragments.publish_on_commit(build, facility="board", broadcast=True)
        raise RuntimeError("rolled back")
    assert calls == []
    with transaction.atomic():
        fragments.publish_on_commit(build, facility="board", broadcast=True, expire=60)
        assert calls == []
    assert calls == [1]
    kept = RedisPublisher().fetch_message(RequestFactory().get("/"), "board", "broadcast")
    assert kept == b'<turbo-stream action="remove" target="incident-1"></turbo-stream>'


def test_signatures() -> None:
    token = streams.sign_stream("incident-7")
    streams.verify_stream("incident-7", token)
    with pytest.raises(ChannelRefused, match="invalid"):
        streams.verify_stream("incident-8", token)  # another object's page
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(ChannelRefused, match="invalid"):
        streams.verify_stream("incident-7", forged)
    with pytest.raises(ChannelRefused, match="malformed"):
        streams.verify_stream("incident-7", "nonsense")
    # Another signature of the project (no salt, or another salt) does not stand in for a stream's.
    from django.core import signing

    unsalted = signing.Signer().sign("incident-7:0")[len("incident-7:") :]
    with pytest.raises(ChannelRefused, match="invalid"):
        streams.verify_stream("incident-7", unsalted)
    expiring = streams.sign_stream("incident-7", expires_in=60)
    streams.verify_stream("incident-7", expiring)
    with pytest.raises(ChannelRefused, match="expired"):
        streams.verify_stream("incident-7", expiring, now=time.time() + 61)
    with pytest.raises(ImproperlyConfigured, match="WS4REDIS_SIGNED_STREAMS"):
        streams.sign_stream("board")  # nobody would check it


def test_server_check_of_a_subscription() -> None:
    factory = RequestFactory()
    token = streams.sign_stream("incident-7")
    ok = factory.get("/ws/incident-7", {"subscribe-broadcast": "", "sig": token})
    streams.check_signed_stream(ok, parse_flags("incident-7", ok.META["QUERY_STRING"]))
    streams.check_signed_stream(factory.get("/ws/board"), parse_flags("board", "subscribe-broadcast"))  # unsigned
    with pytest.raises(ChannelRefused, match="needs a signature"):
        streams.check_signed_stream(factory.get("/"), parse_flags("incident-7", "subscribe-broadcast"))
    publishing = factory.get("/", {"publish-broadcast": "", "sig": token})
    with pytest.raises(ChannelRefused, match="may not publish"):
        streams.check_signed_stream(publishing, parse_flags("incident-7", publishing.META["QUERY_STRING"]))


def render(source: str, request: Any = None, **context: Any) -> str:
    request = request or RequestFactory().get("/", HTTP_HOST="example.com")
    return Template("{% load ws4redis %}" + source).render(Context({"request": request, **context}))


def test_tags_render_the_elements_htmx_and_turbo_need() -> None:
    request = RequestFactory().get("/", HTTP_HOST="example.com")
    html = render("{% htmx_stream_from 'board' %}{% turbo_stream_from 'board' subscribe='user,broadcast' %}", request)
    assert html == (
        '<div hx-ext="ws" ws-connect="ws://example.com/ws/board?subscribe-broadcast" data-ws4redis-live="board" '
        'hidden></div><script src="ws4redis/live.js" defer></script>'  # once per page (STATIC_URL unset here)
        '<turbo-stream-source src="ws://example.com/ws/board?subscribe-broadcast&amp;subscribe-user" '
        'data-ws4redis-live="board"></turbo-stream-source>'
    )
    secure = RequestFactory().get("/", secure=True, HTTP_HOST="example.com")
    assert render("{% turbo_stream_from name script=False %}", secure, name="a&b").startswith(
        '<turbo-stream-source src="wss://example.com/ws/a%26b?subscribe-broadcast" data-ws4redis-live="a&amp;b">'
    )


def test_signed_tags_carry_a_signature_the_server_accepts() -> None:
    html = render("{% htmx_stream_from name signed=True expires=600 script=False %}", name="incident-7")
    url = html.split('ws-connect="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    query = url.split("?", 1)[1]
    request = RequestFactory().get("/ws/incident-7?" + query)
    streams.check_signed_stream(request, parse_flags("incident-7", query))
    assert render("{% websocket_url 'incident-7' subscribe='broadcast' signed=True %}").startswith(
        "ws://example.com/ws/incident-7?subscribe-broadcast&sig=0:"
    )
    with pytest.raises(TemplateSyntaxError, match="WS4REDIS_SIGNED_STREAMS"):
        render("{% turbo_stream_from 'board' signed=True %}")
    with pytest.raises(TemplateSyntaxError, match="needs signed"):
        render("{% websocket_url 'board' expires=5 %}")
    with pytest.raises(TemplateSyntaxError, match="unknown option"):
        Template("{% load ws4redis %}{% htmx_stream_from 'board' publish='broadcast' %}")


def test_the_testing_kit_captures_fragments() -> None:
    """What a project's own tests see: ``capture_published`` records a fragment per channel, without Redis."""
    from ws4redis.testing import capture_published

    markup = fragments.turbo_stream("remove", target="incident-7")
    with capture_published() as outbox:
        fragments.publish(markup, {"facility": "board", "broadcast": True},
                          {"facility": "incident-7", "users": ["ann"]}, expire=0)
    assert [(p.facility, p.audience, p.target) for p in outbox] == [("board", "broadcast", None),
                                                                     ("incident-7", "user", "ann")]
    assert outbox.messages(facility="incident-7") == [markup]
