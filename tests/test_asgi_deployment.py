"""The ASGI deployment files as shipped, on real servers behind nginx (docs/deployment.md, layouts 4 and 5).

``nginx/ws4redis-asgi.conf`` in front of each ASGI server serving Django and websockets in one application, and
``nginx/ws4redis-asgi-split.conf`` in front of a websocket-only process (``ws4redis.asgi:application``) next to
Django's own ASGI application. As in ``tests/test_deployment.py``, only addresses and paths are substituted, each
substitution must find its target, and every process is stopped by pid.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.asgi_servers import ASGI_SERVERS, AsgiServer, asgi_servers_fixture  # noqa: F401  (fixture)
from tests.conftest import People, connect, refused_status
from tests.servers import ROOT
from tests.test_deployment import NGINX, Nginx, get
from ws4redis.publisher import RedisPublisher


@pytest.fixture(autouse=True)
def _needs_nginx() -> None:
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")


def status_of(url: str) -> int:
    """The HTTP status of a plain GET, error statuses included."""
    try:
        return get(url)[0]
    except urllib.error.HTTPError as error:
        return error.code


def assert_serves_through(nginx: Nginx, people: People, facility: str) -> None:
    """Through nginx: Django's page, a user's messages on two sockets, a foreign Origin refused, and a plain request
    under WEBSOCKET_URL answered 400."""
    assert get(f"http://127.0.0.1:{nginx.port}/")[:2] == (200, "django page")
    cookie = people.cookie("alice")
    origin = f"http://127.0.0.1:{nginx.port}"  # the page's own origin: nginx passes the Host through
    sockets = [connect(nginx, f"/ws/{facility}?subscribe-user", cookie=cookie, origin=origin)  # type: ignore[arg-type]
               for _ in range(2)]
    RedisPublisher(facility=facility, users=["alice"]).publish_message("through nginx")
    assert [ws.recv() for ws in sockets] == ["through nginx"] * 2
    assert refused_status(nginx, f"/ws/{facility}?subscribe-user", origin="http://evil.example") == 403  # type: ignore[arg-type]
    assert status_of(f"http://127.0.0.1:{nginx.port}/ws/{facility}?subscribe-user") == 400
    for ws in sockets:
        ws.close()


@pytest.mark.parametrize("name", [server for server in ASGI_SERVERS if server != "uvicorn"])
def test_nginx_in_front_of_each_asgi_server(
    name: str, asgi_servers: Callable[..., AsgiServer], people: People, tmp_path: Path
) -> None:
    """Layout 4 with daphne, hypercorn and granian (uvicorn workers under gunicorn: tests/test_asgi_websocket.py)."""
    app = asgi_servers(name)
    nginx = Nginx(ROOT / "nginx" / "ws4redis-asgi.conf", {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{app.port};",
        "alias /srv/ws4redis/static/;": f"alias {tmp_path}/static/;",
    }, tmp_path)
    try:
        assert_serves_through(nginx, people, f"front{name}")
    finally:
        nginx.stop()


def test_nginx_in_front_of_a_split_asgi_layout(
    asgi_servers: Callable[..., AsgiServer], people: People, tmp_path: Path
) -> None:
    """Layout 5: websockets from ``ws4redis.asgi:application`` on uvicorn, pages from Django's own ASGI application
    on another uvicorn; the websocket process answers nothing outside WEBSOCKET_URL."""
    websockets = asgi_servers("uvicorn", app="ws4redis.asgi:application")
    # Django's own handler refuses the lifespan protocol: "auto" lets uvicorn go on without it.
    django = AsgiServer("uvicorn", app="tests.project.django_asgi:application", extra=["--lifespan", "auto"])
    try:
        nginx = Nginx(ROOT / "nginx" / "ws4redis-asgi-split.conf", {
            "server 127.0.0.1:8001;": f"server 127.0.0.1:{websockets.port};",
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{django.port};",
            "alias /srv/ws4redis/static/;": f"alias {tmp_path}/static/;",
        }, tmp_path)
        try:
            assert_serves_through(nginx, people, "split")
            assert status_of(f"http://127.0.0.1:{websockets.port}/") == 404  # websockets only
            assert status_of(f"http://127.0.0.1:{django.port}/ws/split") == 404  # Django's own urlconf: no ws4redis
        finally:
            nginx.stop()
    finally:
        django.stop()
