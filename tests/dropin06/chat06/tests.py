"""Websocket tests written for django-websocket-redis 0.6: Django's ``LiveServerTestCase`` serving
``ws4redis.django_runserver.application`` (as 0.6's own test suite set it up), websocket-client, ``RedisPublisher``.

They must pass unchanged with ws4redis installed instead. Publishing from a socket is done by a logged-in user: the
only deliberate difference a 0.6 project meets here is that anonymous clients may only ``subscribe-broadcast``
(docs/migration.md).
"""

import http.client
import time

import redis
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.servers.basehttp import WSGIServer
from django.test import LiveServerTestCase, RequestFactory
from websocket import WebSocketException, create_connection

from ws4redis.django_runserver import application
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import SELF, RedisMessage


class WebsocketTests(LiveServerTestCase):
    host = "127.0.0.1"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server_thread.httpd.set_app(application)

    def setUp(self):
        self.facility = "unittest"
        self.prefix = settings.WS4REDIS_PREFIX
        self.websocket_base_url = self.live_server_url.replace("http:", "ws:", 1) + "/ws/" + self.facility
        self.message = RedisMessage("".join(chr(c) for c in range(33, 128)))
        self.factory = RequestFactory()
        self.redis = redis.Redis(**settings.WS4REDIS_CONNECTION)
        self.redis.flushdb()
        chatters = Group.objects.create(name="chatters")
        for name in ("john", "mary"):
            User.objects.create_user(name, password="secret").groups.add(chatters)
        self.sockets = []

    def tearDown(self):
        for ws in self.sockets:
            ws.close()
        self.redis.close()

    def connect(self, query, cookie=None, **kwargs):
        header = [f"Cookie: sessionid={cookie}"] if cookie else []
        ws = create_connection(self.websocket_base_url + query, header=header + kwargs.pop("header", []),
                               timeout=5, **kwargs)
        self.sockets.append(ws)
        return ws

    def settle(self, *sockets):
        """Wait until each socket's opening is done (kept messages sent), by a heartbeat's round trip."""
        for ws in sockets:
            ws.send(settings.WS4REDIS_HEARTBEAT)
            self.assertEqual(ws.recv(), settings.WS4REDIS_HEARTBEAT)

    def login(self, name):
        self.assertTrue(self.client.login(username=name, password="secret"))
        return self.client.cookies["sessionid"].value

    # -- kept messages (WS4REDIS_EXPIRE) ------------------------------------------------------------------------
    def test_subscribe_broadcast(self):
        publisher = RedisPublisher(facility=self.facility, broadcast=True)
        publisher.publish_message(self.message, 10)
        ws = self.connect("?subscribe-broadcast")
        self.assertTrue(ws.connected)
        self.assertEqual(ws.recv(), self.message.decode())
        ws.close()
        self.assertFalse(ws.connected)

    def test_subscribe_user(self):
        cookie = self.login("john")
        request = self.factory.get("/chat/")
        request.user = User.objects.get(username="mary")
        publisher = RedisPublisher(request=request, facility=self.facility, users=["john", "mary"])
        publisher.publish_message(self.message, 10)
        ws = self.connect("?subscribe-user", cookie)
        self.assertEqual(ws.recv(), self.message.decode())

    def test_subscribe_group(self):
        cookie = self.login("john")
        publisher = RedisPublisher(facility=self.facility, groups=["chatters"])
        publisher.publish_message(self.message, 10)
        ws = self.connect("?subscribe-group", cookie)
        self.assertEqual(ws.recv(), self.message.decode())

    def test_subscribe_session(self):
        cookie = self.login("john")
        request = self.factory.get("/chat/")
        request.session = self.client.session
        publisher = RedisPublisher(request=request, facility=self.facility, sessions=[SELF])
        publisher.publish_message(self.message, 10)
        ws = self.connect("?subscribe-session", cookie)
        self.assertEqual(ws.recv(), self.message.decode())

    # -- live messages on every audience -------------------------------------------------------------------------
    def test_live_messages_on_every_audience(self):
        cookie = self.login("john")
        request = self.factory.get("/chat/")
        request.user = User.objects.get(username="john")
        request.session = self.client.session
        audiences = {
            "broadcast": {"broadcast": True},
            "user": {"users": [SELF]},
            "group": {"groups": ["chatters"]},
            "session": {"sessions": [SELF]},
        }
        for audience, kwargs in audiences.items():
            ws = self.connect("?subscribe-" + audience, cookie)
            self.settle(ws)
            text = "live for " + audience
            receivers = RedisPublisher(request=request, facility=self.facility, **kwargs).publish_message(text, 0)
            self.assertEqual(receivers, 1, audience)  # one hub per process, however many sockets
            self.assertEqual(ws.recv(), text)

    def test_pipeline_publish_message(self):
        ws = self.connect("?subscribe-broadcast")
        self.settle(ws)
        publisher = RedisPublisher(facility=self.facility, broadcast=True)
        self.assertEqual(publisher.pipeline_publish_message(RedisMessage("through a pipeline"), 10, True), 1)
        self.assertEqual(ws.recv(), "through a pipeline")
        publisher.pipeline_publish_message("not in a transaction", expire=None, transaction=False)
        self.assertEqual(ws.recv(), "not in a transaction")
        self.assertEqual(publisher.fetch_message(self.factory.get("/"), self.facility), b"not in a transaction")

    # -- publishing from a websocket ----------------------------------------------------------------------------
    def test_publish_user(self):
        cookie = self.login("john")
        ws = self.connect("?publish-user", cookie)
        ws.send(self.message)
        ws.close()
        publisher = RedisPublisher()
        request = self.factory.get("/chat/")
        request.user = User.objects.get(username="john")
        self.assertEqual(publisher.fetch_message(request, self.facility, "user"), self.message)
        request.user = None
        self.assertIsNone(publisher.fetch_message(request, self.facility, "user"))

    def test_publish_broadcast_reaches_another_socket_and_echo_only_with_echo(self):
        cookie = self.login("john")
        listener = self.connect("?subscribe-broadcast")
        quiet = self.connect("?subscribe-broadcast&publish-broadcast", cookie)
        echoing = self.connect("?subscribe-broadcast&publish-broadcast&echo", cookie)
        self.settle(listener, quiet, echoing)
        quiet.send("from the quiet one")
        self.assertEqual(listener.recv(), "from the quiet one")
        self.assertEqual(echoing.recv(), "from the quiet one")
        echoing.send("from the echoing one")
        self.assertEqual(listener.recv(), "from the echoing one")
        self.assertEqual(echoing.recv(), "from the echoing one")  # its own message, with ``echo``
        # The quiet socket got the echoing one's message, never its own.
        self.assertEqual(quiet.recv(), "from the echoing one")
        publisher = RedisPublisher(facility=self.facility, broadcast=True)
        self.assertEqual(publisher.fetch_message(self.factory.get("/"), self.facility, "broadcast"),
                         b"from the echoing one")

    def test_heartbeat_is_answered_and_never_published(self):
        cookie = self.login("john")
        listener = self.connect("?subscribe-broadcast")
        ws = self.connect("?subscribe-broadcast&publish-broadcast", cookie)
        self.settle(listener, ws)  # the heartbeat is answered
        ws.send("after the heartbeat")
        self.assertEqual(listener.recv(), "after the heartbeat")  # the heartbeat itself never reached it

    # -- refusals and closing -----------------------------------------------------------------------------------
    def test_forbidden_channel(self):
        with self.assertRaises(WebSocketException):
            self.connect("?subscribe-broadcast", header=["Deny-Channels: YES"])

    def test_invalid_request(self):
        for method in ("GET", "POST"):
            conn = http.client.HTTPConnection(self.server_thread.host, self.server_thread.port, timeout=5)
            conn.request(method, "/ws/foobar", body=b"" if method == "POST" else None)
            response = conn.getresponse()
            self.assertEqual(response.status, 400)
            self.assertIn("upgrade to a websocket", response.read().decode())
            conn.close()

    def test_close_connection(self):
        errors = []
        old_handle_error = WSGIServer.handle_error

        def handle_error(server, *args, **kwargs):
            errors.append(args)
            return old_handle_error(server, *args, **kwargs)

        WSGIServer.handle_error = handle_error
        try:
            for status in (1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1015):
                ws = create_connection(self.websocket_base_url + "?subscribe-broadcast", timeout=5)
                self.assertTrue(ws.connected)
                ws.close(status)
                self.assertFalse(ws.connected)
        finally:
            WSGIServer.handle_error = old_handle_error
        self.assertEqual(errors, [])

    def test_protocol_support(self):
        ws = self.connect("?subscribe-broadcast", subprotocols=["unittestprotocol"])
        self.assertEqual(ws.headers["sec-websocket-protocol"], "unittestprotocol")
        ws.close()
        ws = self.connect("?subscribe-broadcast")
        self.assertNotIn("sec-websocket-protocol", ws.headers)

    def test_closing_unsubscribes(self):
        ws = self.connect("?subscribe-broadcast")
        channel = self.prefix + ":broadcast:" + self.facility
        self.assertEqual(dict(self.redis.pubsub_numsub(channel))[channel.encode()], 1)
        ws.close()
        # The server answers the close after it detached; Redis confirms the UNSUBSCRIBE shortly after.
        deadline = time.monotonic() + 5
        while dict(self.redis.pubsub_numsub(channel))[channel.encode()] != 0:
            self.assertLess(time.monotonic(), deadline, "still subscribed after the websocket closed")
            time.sleep(0.01)  # polling Redis: there is no event to wait for


class StaticLiveServerWebsocketTests(StaticLiveServerTestCase):
    """The same on ``StaticLiveServerTestCase``, the live server of projects with ``django.contrib.staticfiles``."""

    host = "127.0.0.1"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server_thread.httpd.set_app(application)

    def test_broadcast_round_trip(self):
        url = self.live_server_url.replace("http:", "ws:", 1) + "/ws/static?subscribe-broadcast"
        ws = create_connection(url, timeout=5)
        ws.send(settings.WS4REDIS_HEARTBEAT)
        self.assertEqual(ws.recv(), settings.WS4REDIS_HEARTBEAT)
        self.assertEqual(RedisPublisher(facility="static", broadcast=True).publish_message("to the page", 0), 1)
        self.assertEqual(ws.recv(), "to the page")
        ws.close()
