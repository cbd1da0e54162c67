"""``{% websocket_url %}``: unit tests with a request factory, and the tag served by real uWSGI over http and https."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory, override_settings

from tests.conftest import People, connect
from tests.servers import UwsgiServer

TAG = "{% load ws4redis %}{% websocket_url 'chat' subscribe='user,broadcast' publish='broadcast' echo=True %}"


def render(source: str, *, secure: bool = False, host: str = "example.com") -> str:
    request = RequestFactory().get("/", secure=secure, HTTP_HOST=host)
    return Template(source).render(Context({"request": request}))


@override_settings(ALLOWED_HOSTS=["example.com"])
def test_http_and_https_urls() -> None:
    assert render(TAG) == "ws://example.com/ws/chat?subscribe-broadcast&subscribe-user&publish-broadcast&echo"
    assert render(TAG, secure=True).startswith("wss://example.com/ws/chat?")


@override_settings(ALLOWED_HOSTS=["example.com"], WEBSOCKET_URL="/sockets/")
def test_options_variables_and_as() -> None:
    source = "{% load ws4redis %}{% websocket_url facility subscribe=audiences as url %}[{{ url }}]"
    request = RequestFactory().get("/", HTTP_HOST="example.com")
    out = Template(source).render(Context({"request": request, "facility": "a b", "audiences": ["group"]}))
    assert out == "[ws://example.com/sockets/a%20b?subscribe-group]"
    assert render("{% load ws4redis %}{% websocket_url path='/sockets/echo/' %}") == "ws://example.com/sockets/echo/"


def test_typos_fail_when_the_template_renders() -> None:
    with pytest.raises(TemplateSyntaxError):
        Template("{% load ws4redis %}{% websocket_url 'chat' subscibe='user' %}")
    with pytest.raises(TemplateSyntaxError):
        render("{% load ws4redis %}{% websocket_url 'chat' subscribe='users' %}", host="localhost")
    with pytest.raises(TemplateSyntaxError):
        Template("{% load ws4redis %}{% websocket_url 'chat' %}").render(Context({}))  # no request


def fetch(server: UwsgiServer, headers: dict[str, str] | None = None) -> list[str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/template/", headers=headers or {})
    return urllib.request.urlopen(request, timeout=5).read().decode().splitlines()


def test_tag_on_a_real_server_over_http_and_https(uwsgi_factory: Callable[..., UwsgiServer], people: People) -> None:
    server = uwsgi_factory({"SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]})
    host = f"127.0.0.1:{server.port}"
    chat, news, echo = fetch(server)
    assert chat == f"ws://{host}/ws/chat?subscribe-broadcast&subscribe-user&publish-broadcast&echo"
    assert news == f"ws://{host}/ws/news"
    assert echo == f"ws://{host}/ws/echo/"
    secure = fetch(server, {"X-Forwarded-Proto": "https"})  # behind a TLS-terminating proxy
    assert secure == [chat.replace("ws://", "wss://", 1), news.replace("ws://", "wss://", 1),
                      echo.replace("ws://", "wss://", 1)]
    # The URL the tag printed really works: it is the one a page would open.
    ws = connect(server, chat.split(host, 1)[1], cookie=people.cookie("alice"))
    ws.send("via the tag's URL")
    assert ws.recv() == "via the tag's URL"
