from django.http import HttpRequest, HttpResponse
from django.urls import path

from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import SELF, RedisMessage


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("django page")


def publish_to_self(request: HttpRequest) -> HttpResponse:
    """An ordinary view publishing to its caller's user and session channels (SELF + request)."""
    publisher = RedisPublisher(facility="views", users=[SELF], sessions=[SELF], request=request)
    publisher.publish_message(RedisMessage("from a view"))
    return HttpResponse("published")


urlpatterns = [path("", home), path("publish/", publish_to_self)]
