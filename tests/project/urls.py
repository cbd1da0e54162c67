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

from tests.project import ws_views  # noqa: E402 - websocket views of issue 10, under WEBSOCKET_URL

urlpatterns += [
    path("ws/echo/", ws_views.echo),
    path("ws/members/", ws_views.members_only),
    path("ws/room/<slug:name>/", ws_views.room),
    path("template/", ws_views.template_page),
]

from ws4redis.views import metrics  # noqa: E402 - the operator routes the metrics view where they like

urlpatterns += [path("metrics", metrics)]


def hub_tables(request: HttpRequest) -> HttpResponse:
    """This worker's hub table sizes and RSS, for tests/test_bounded_state.py (one worker: the same process)."""
    import json
    import os

    from ws4redis.hub import get_hub

    sizes = get_hub().table_sizes()
    sizes["pid"] = os.getpid()
    return HttpResponse(json.dumps(sizes), content_type="application/json")


urlpatterns += [path("__hub__/", hub_tables)]
