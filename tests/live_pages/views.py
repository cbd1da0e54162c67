"""Pages and publishing views of the live tests: no socket code anywhere, only renders and publishes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ws4redis import fragments

CLIENTS = ("htmx", "turbo")


def fragment(client: str, action: str, **kwargs: Any) -> SafeString:
    """The same change as an htmx out-of-band swap or a Turbo Stream action."""
    build = fragments.htmx_oob if client == "htmx" else fragments.turbo_stream
    return build(action, **kwargs)


def page(request: HttpRequest, client: str) -> HttpResponse:
    """The board (broadcast), one incident's signed stream (?incident=), and the user's inbox when logged in."""
    if client not in CLIENTS:
        raise Http404(client)
    incident = request.GET.get("incident", "incident-1")
    return render(request, "live_pages/page.html", {"client": client, "incident": incident})


@csrf_exempt
@require_POST
def add_incident(request: HttpRequest, client: str) -> HttpResponse:
    """A view changing data: appends the new incident's row to every open board."""
    markup = fragment(client, "append", target="incidents", template="live_pages/incident.html",
                      context={"pk": request.POST["pk"], "title": request.POST["title"]})
    fragments.publish(markup, facility="board", broadcast=True)
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def queue_status(request: HttpRequest, client: str) -> HttpResponse:
    """A view handing the work to Celery; the task publishes."""
    from tests.live_pages.worker import set_status

    set_status.delay(client, request.POST["incident"], request.POST["text"])
    return HttpResponse(status=202)


def vendor(request: HttpRequest, path: str) -> HttpResponse:
    """The htmx and Turbo files the test set-up installed from the npm registry (no CDN)."""
    from django.views.static import serve

    if not settings.LIVE_NPM_DIR:
        raise Http404("WS4REDIS_LIVE_NPM_DIR is not set")
    return serve(request, path, document_root=f"{settings.LIVE_NPM_DIR}/node_modules")
