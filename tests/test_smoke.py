from django.test import Client
from ws4redis.publisher import RedisPublisher
from tests.conftest import connect

def test_smoke(server, people):
    ws = connect(server, "/ws/foo?subscribe-broadcast&subscribe-user", cookie=people.cookie("alice"))
    RedisPublisher(facility="foo", broadcast=True).publish_message("hello")
    assert ws.recv() == "hello"
