from django.http import HttpResponse
from django.urls import path

from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import RedisMessage


def home(request):
    return HttpResponse("a page")


def publish(request):
    """GET /publish?facility=..&user=..&message=..: publish as a 0.6 view would (broadcast when no user)."""
    user = request.GET.get("user")
    audience = {"users": [user]} if user else {"broadcast": True}
    RedisPublisher(facility=request.GET["facility"], **audience).publish_message(RedisMessage(request.GET["message"]))
    return HttpResponse("published")


urlpatterns = [path("", home), path("publish", publish)]
