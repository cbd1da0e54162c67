"""The Origin check compares scheme, host and port, as a browser's same-origin policy does (issue 19, item 8).

Before, any scheme and port of an allowed host passed: a page on ``http://127.0.0.1:1`` (another program on the
same machine) or ``https://localhost`` opened sockets with the user's cookies on a server at ``127.0.0.1:PORT``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import People, connect, refused_status
from tests.servers_any import any_server_fixture, gevent_servers_fixture  # noqa: F401  (fixtures)
from ws4redis.auth import check_origin
from ws4redis.exceptions import ForbiddenOrigin


def allowed(origin: str, host: str = "127.0.0.1:8000", **environ: str) -> bool:
    try:
        check_origin({"HTTP_ORIGIN": origin, "HTTP_HOST": host, "wsgi.url_scheme": "http", **environ})
    except ForbiddenOrigin:
        return False
    return True


@pytest.mark.parametrize("origin", [
    "http://127.0.0.1:1", "https://127.0.0.1:8000", "https://localhost", "http://localhost",
    "http://localhost:80", "https://localhost:8000", "http://127.0.0.1", "ftp://127.0.0.1:8000",
    "http://127.0.0.1:8000/path", "http://user@127.0.0.1:8000", "http://127.0.0.1:99999", "null",
])
@override_settings(ALLOWED_HOSTS=["127.0.0.1", "localhost"])
def test_other_scheme_or_port_of_an_allowed_host_is_refused(origin: str) -> None:
    assert not allowed(origin)


@override_settings(ALLOWED_HOSTS=["127.0.0.1", "localhost", ".example.com"])
def test_same_origin_and_other_hosts_of_the_site_on_the_same_scheme_and_port_pass() -> None:
    assert allowed("http://127.0.0.1:8000")
    assert allowed("http://localhost:8000")  # ALLOWED_HOSTS: another host name of this site
    assert allowed("https://www.example.com", host="ws.example.com", HTTP_X_FORWARDED_PROTO="https") is False
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        # Behind a TLS proxy Django's own setting says the request was https, as for CSRF.
        assert allowed("https://www.example.com", host="ws.example.com", HTTP_X_FORWARDED_PROTO="https")
        assert allowed("https://ws.example.com:443", host="ws.example.com", HTTP_X_FORWARDED_PROTO="https")
        assert not allowed("http://www.example.com", host="ws.example.com", HTTP_X_FORWARDED_PROTO="https")


@override_settings(ALLOWED_HOSTS=["127.0.0.1"], CSRF_TRUSTED_ORIGINS=["https://*.partner.example", "http://a.test:81"])
def test_csrf_trusted_origins_are_trusted_with_their_scheme_and_port() -> None:
    assert allowed("https://app.partner.example")
    assert not allowed("https://partner.example")  # the wildcard means subdomains only, as in Django
    assert not allowed("http://app.partner.example")
    assert allowed("http://a.test:81")
    assert not allowed("http://a.test")


@override_settings(WS4REDIS_ALLOWED_ORIGINS=["https://app.example", "https://*.cdn.example"])
def test_allowed_origins_compare_scheme_host_and_port() -> None:
    assert allowed("https://app.example") and allowed("https://app.example:443") and allowed("https://x.cdn.example")
    assert not allowed("http://app.example")
    assert not allowed("https://app.example:8443")
    assert not allowed("https://app.example.evil")


def test_the_attack_end_to_end(any_server: Callable[..., Any], people: People) -> None:
    """A logged-in user's cookie with a foreign scheme or port of the server's own host: 403 before the upgrade."""
    server = any_server()
    cookie = people.cookie("alice")
    for origin in ("http://127.0.0.1:1", "https://localhost", f"https://127.0.0.1:{server.port}",
                   f"http://localhost:{server.port + 1}"):
        assert refused_status(server, "/ws/o?subscribe-user", cookie=cookie, origin=origin) == 403, origin
    connect(server, "/ws/o?subscribe-user", cookie=cookie, origin=f"http://127.0.0.1:{server.port}")
    connect(server, "/ws/o?subscribe-user", cookie=cookie, origin=f"http://localhost:{server.port}")
