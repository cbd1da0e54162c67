"""The incident board's views: ordinary Django views that change rows. They never publish by hand: saving an
``Incident`` publishes its live HTML after commit (``chatserver.incidents``). The buttons are htmx ``hx-post``s
with ``hx-swap="none"``: the page changes when the fragment arrives over its websocket, like everybody else's."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from chatserver.incidents import BOARD
from chatserver.models import Incident
from chatserver.tasks import diagnose_incident

NEXT_STATUS = {"acknowledge": "investigating", "mitigate": "mitigated", "resolve": "resolved", "reopen": "open"}
ACTIONS = [("acknowledge", "Acknowledge"), ("mitigate", "Mitigated"), ("resolve", "Resolve"), ("reopen", "Reopen")]


@login_required
def board(request: HttpRequest) -> HttpResponse:
    incidents = Incident.objects.select_related("opened_by")[:50]
    return render(request, "chatserver/incidents/board.html",
                  {"page": "incidents", "incidents": incidents, "facility": BOARD,
                   "severities": Incident.SEVERITIES})


@login_required
@require_POST
def open_incident(request: HttpRequest) -> HttpResponse:
    title = request.POST.get("title", "").strip()[:120]
    severity = request.POST.get("severity", "sev3")
    if not title or severity not in dict(Incident.SEVERITIES):
        return HttpResponseBadRequest("a title and a known severity, please")
    Incident.objects.create(title=title, severity=severity, opened_by=request.user)
    return HttpResponse(status=204)


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One incident: its page subscribes to its own signed stream, so knowing ``incident-<pk>`` is not enough."""
    incident = get_object_or_404(Incident.objects.select_related("opened_by"), pk=pk)
    return render(request, "chatserver/incidents/detail.html", {"page": "incidents", "incident": incident,
                                                              "actions": ACTIONS})


@login_required
@require_POST
def transition(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    incident = get_object_or_404(Incident, pk=pk)
    if action not in NEXT_STATUS:
        return HttpResponseBadRequest("unknown action")
    incident.status = NEXT_STATUS[action]
    incident.note = f"{request.user.get_username()}: {action}"
    incident.save()
    return HttpResponse(status=204)


@login_required
@require_POST
def diagnose(request: HttpRequest, pk: int) -> HttpResponse:
    """Hand the slow part to Celery; the task's saves publish as the views' do."""
    incident = get_object_or_404(Incident, pk=pk)
    diagnose_incident.delay(incident.pk, request.user.get_username())
    return HttpResponse(status=202)
