"""What users need in their own tests: a capture of publishes, a websocket test client, a live-server test case.

- ``capture_published()`` records what ``RedisPublisher``/``RedisStore`` publish, the way ``django.core.mail.outbox``
  records mail: a view's test asserts "this view published X to user Y" without Redis (or, with ``deliver=True``,
  while still delivering).
- ``WebsocketTestClient`` is a small synchronous websocket client (``websocket-client``) that logs in as a Django
  user with a real session cookie.
- ``WebsocketLiveServerTestCase`` is Django's ``LiveServerTestCase`` with the gevent server of
  ``ws4redis.servers.gevent_server``:
  pages and websockets on ``live_server_url``. It monkey-patches the test process for gevent when its first class
  is set up (the server runs in a greenlet then, as Django's live-server "thread"); keep such tests in a run where
  that is acceptable.

See ``docs/servers.md`` for an example test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

from django.conf import settings as django_settings
from django.test import LiveServerTestCase
from django.test.testcases import LiveServerThread

from ws4redis import settings

__all__ = [
    "Published",
    "PublishedOutbox",
    "WebsocketLiveServerTestCase",
    "WebsocketRefused",
    "WebsocketTestClient",
    "capture_published",
]

_AUDIENCES = ("broadcast", "user", "group", "session")


@dataclasses.dataclass(frozen=True)
class Published:
    """One publish: the Redis channel it went to, split into facility and audience, and the message bytes."""

    channel: str
    message: bytes
    expire: int

    @property
    def _parts(self) -> tuple[str, str | None, str]:
        name = self.channel
        prefix = settings.get("WS4REDIS_PREFIX")
        if prefix and name.startswith(f"{prefix}:"):
            name = name[len(prefix) + 1 :]
        audience, _, rest = name.partition(":")
        if audience == "broadcast":
            return audience, None, rest
        target, _, facility = rest.partition(":")
        return audience, target, facility

    @property
    def audience(self) -> str:
        """``broadcast``, ``user``, ``group`` or ``session``."""
        return self._parts[0]

    @property
    def target(self) -> str | None:
        """The user name, group name or session key; ``None`` for a broadcast."""
        return self._parts[1]

    @property
    def facility(self) -> str:
        return self._parts[2]

    @property
    def text(self) -> str:
        return self.message.decode("utf-8")


class PublishedOutbox(list[Published]):
    """Every publish made inside ``capture_published()``, one entry per channel, in order."""

    def filter(self, *, facility: str | None = None, audience: str | None = None,
               target: str | None = None) -> list[Published]:
        """The publishes matching every given criterion, e.g. ``filter(audience="user", target="bob")``."""
        if audience is not None and audience not in _AUDIENCES:
            raise ValueError(f"audience must be one of {_AUDIENCES}")
        return [
            p for p in self
            if (facility is None or p.facility == facility)
            and (audience is None or p.audience == audience)
            and (target is None or p.target == target)
        ]

    def messages(self, **criteria: str) -> list[str]:
        """The text of the matching publishes (``filter``'s criteria)."""
        return [p.text for p in self.filter(**criteria)]


@contextlib.contextmanager
def capture_published(*, deliver: bool = False) -> Iterator[PublishedOutbox]:
    """Record what ``RedisStore.publish_message`` and ``RedisPublisher.pipeline_publish_message`` publish.

    Without ``deliver`` nothing reaches Redis (no server needed; ``publish_message`` returns 0); with it the
    publishes go through as usual and are recorded too. Publishes made by websocket clients themselves are not
    recorded: they do not go through a publisher.
    """
    from ws4redis.broker.publisher import RedisPublisher
    from ws4redis.broker.redis_store import RedisMessage, RedisStore

    outbox = PublishedOutbox()
    real_publish = RedisStore.publish_message
    real_pipeline = RedisPublisher.pipeline_publish_message

    def record(store: RedisStore, message: str | bytes | None, expire: int | None) -> bool:
        wrapped = message if message is None or isinstance(message, RedisMessage) else RedisMessage(message)
        if wrapped is None:
            return False  # None or the heartbeat string: nothing is published
        keep = store._expire if expire is None else int(expire)
        outbox.extend(Published(channel, bytes(wrapped), keep) for channel in sorted(store._publishers))
        return True

    def publish_message(store: RedisStore, message: str | bytes | None, expire: int | None = None) -> int:
        record(store, message, expire)
        return real_publish(store, message, expire) if deliver else 0

    def pipeline_publish_message(store: RedisPublisher, message: str | bytes, expire: int | None = None,
                                 transaction: bool = True, *, pipeline: Any = None) -> Any:
        record(store, message, expire)
        if deliver:
            return real_pipeline(store, message, expire, transaction, pipeline=pipeline)
        return pipeline if pipeline is not None else 0

    with mock.patch.object(RedisStore, "publish_message", publish_message), \
            mock.patch.object(RedisPublisher, "pipeline_publish_message", pipeline_publish_message):
        yield outbox


class WebsocketRefused(Exception):
    """The server answered the websocket request with an HTTP status instead of 101."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status} {body}".strip())
        self.status = status
        self.body = body


class WebsocketTestClient:
    """A synchronous websocket client for tests, logged in as a Django user when ``login`` was called.

    ``base_url`` is the server's ``http://host:port`` (``live_server_url``); ``connect`` adds ``WEBSOCKET_URL``,
    the facility and the flags.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cookie: str | None = None
        self.ws: Any = None

    def login(self, user: Any) -> WebsocketTestClient:
        """Log ``user`` in through Django's own login path and keep the session cookie (like ``Client.force_login``)."""
        from django.test import Client

        client = Client()
        client.force_login(user)
        name = django_settings.SESSION_COOKIE_NAME
        self.cookie = f"{name}={client.cookies[name].value}"
        return self

    def connect(self, facility: str, *flags: str, subprotocols: list[str] | None = None,
                origin: str | None = None, headers: list[str] | None = None) -> WebsocketTestClient:
        """Open ``WEBSOCKET_URL + facility?flags``; raises ``WebsocketRefused`` with the status on refusal."""
        import websocket

        url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        query = "&".join(flags)
        url = f"{url}{settings.get('WEBSOCKET_URL')}{facility}" + (f"?{query}" if query else "")
        options: dict[str, Any] = {"timeout": self.timeout, "header": headers or []}
        if self.cookie:
            options["cookie"] = self.cookie
        if origin:
            options["origin"] = origin
        if subprotocols:
            options["subprotocols"] = subprotocols
        try:
            self.ws = websocket.create_connection(url, **options)
        except websocket.WebSocketBadStatusException as exc:
            body = exc.resp_body.decode(errors="replace") if isinstance(exc.resp_body, bytes) else str(exc.resp_body)
            raise WebsocketRefused(int(exc.status_code), body.strip()) from exc
        return self

    @property
    def subprotocol(self) -> str | None:
        return self.ws.getsubprotocol() if self.ws is not None else None

    def send(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.ws.send_binary(data)
        else:
            self.ws.send(data)

    def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message (text as ``str``, binary as ``bytes``); raises ``TimeoutError`` after ``timeout``."""
        import websocket

        self.ws.settimeout(self.timeout if timeout is None else timeout)
        try:
            return self.ws.recv()  # type: ignore[no-any-return]
        except websocket.WebSocketTimeoutException as exc:
            raise TimeoutError("no websocket message in time") from exc

    def receive_json(self, timeout: float | None = None) -> Any:
        return json.loads(self.receive(timeout))

    def assert_no_message(self, timeout: float = 0.2) -> None:
        """Fail if a message arrives within ``timeout`` (to assert absence; never a way to wait for something)."""
        try:
            data = self.receive(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected websocket message {data!r}")

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def __enter__(self) -> WebsocketTestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _GeventLiveServer:
    """What ``LiveServerThread`` expects of its server (``set_app``, ``serve_forever``, ``shutdown``...), on gevent."""

    def __init__(self, address: tuple[str, int]) -> None:
        from ws4redis.servers.gevent_server import listen

        self.socket = listen(*address)
        self.server_address = self.socket.getsockname()
        self._server: Any = None

    def set_app(self, application: Any) -> None:
        from ws4redis.servers.gevent_server import GeventDispatcher, make_server

        self._server = make_server(self.socket, GeventDispatcher(application))

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.stop(timeout=1)

    def server_close(self) -> None:
        self.socket.close()


class _GeventLiveServerThread(LiveServerThread):
    """Django's live-server thread, a greenlet once the process is patched; it signals its own end.

    ``Thread.join`` waits on a lock that a greenlet "thread" never releases under Python 3.11+, so ``terminate``
    waits for this event instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import gevent.event

        super().__init__(*args, **kwargs)
        self.finished = gevent.event.Event()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.finished.set()

    def _create_server(self, connections_override: Any = None) -> Any:
        return _GeventLiveServer((self.host, self.port))

    def terminate(self) -> None:
        if hasattr(self, "httpd"):
            self.httpd.shutdown()
            self.httpd.server_close()
        self.finished.wait(10)


class WebsocketLiveServerTestCase(LiveServerTestCase):
    """``LiveServerTestCase`` serving Django and websockets (gevent + wsproto) on ``live_server_url``.

    Redis must be reachable with the project's ``WS4REDIS_CONNECTION``. ``websocket_client()`` gives a
    ``WebsocketTestClient`` for this server.
    """

    server_thread_class = _GeventLiveServerThread

    @classmethod
    def setUpClass(cls) -> None:
        from ws4redis.servers.gevent_server import patch

        patch()  # the live server's "thread" becomes a greenlet sharing the test's gevent loop
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        from ws4redis.runtime.gevent.hub import reset_hub

        reset_hub()

    def websocket_client(self, user: Any = None) -> WebsocketTestClient:
        client = WebsocketTestClient(self.live_server_url)
        return client.login(user) if user is not None else client
