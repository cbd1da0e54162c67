"""Ordinary Django views. Publishing is a ``RedisPublisher`` call in the view: no consumer code, no socket code.

The chat's three modes differ only in the audience given to the publisher:
broadcast (everyone on the room), ``users=[addressee, sender]`` (a direct message: the addressee and the sender's
own other tabs, nobody else), ``groups=[name]`` (members of that group, whose names ws4redis cached in the session
at login). Every browser listens on the one ``chat`` facility with
``subscribe-broadcast&subscribe-user&subscribe-group``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from chatserver.accounts import DEFAULT_PASSWORD, DEMO_GROUP, DEMO_USERS, GROUP_MEMBERS
from chatserver.metrics import MESSAGES_KEY
from chatserver.presence import unread_notice
from chatserver.tasks import build_report
from ws4redis import presence
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import get_connection

CHAT = "chat"
MAX_TEXT = 2000
# (tile key, title, the process feeding it): the page names each tile's source so a stale tile points somewhere.
DASHBOARD_TILES = [
    ("host", "Host", "publish_metrics"),
    ("redis", "Redis", "publish_metrics"),
    ("chat", "Chat traffic", "publish_metrics"),
    ("worker", "Celery worker", "worker beat"),
]


def _bad(reason: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"ok": False, "error": reason}, status=status)


def _my_groups(request: HttpRequest) -> list[str]:
    return list(request.user.groups.order_by("name").values_list("name", flat=True))


class DemoLoginView(LoginView):
    """Django's login, with the demo accounts shown on the page (it is a demo: the password is printed anyway)."""

    template_name = "chatserver/login.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["demo_users"] = [(name, DEMO_GROUP if name in GROUP_MEMBERS else "") for name in DEMO_USERS]
        context["demo_password"] = DEFAULT_PASSWORD
        return context


def home(request: HttpRequest) -> HttpResponse:
    return redirect("chat")


@login_required
def chat(request: HttpRequest) -> HttpResponse:
    people = User.objects.exclude(pk=request.user.pk).order_by("username")
    return render(request, "chatserver/chat.html", {
        "people": people,
        "online": set(presence.users(CHAT)),  # then kept current by the user_online/user_offline broadcasts
        "my_groups": _my_groups(request),
        "page": "chat",
    })


@login_required
@require_POST
def send(request: HttpRequest) -> JsonResponse:
    """Publish one chat line; the sender's browser shows it when it arrives back, like everyone else's."""
    mode = request.POST.get("mode", "")
    text = request.POST.get("text", "").strip()
    target = request.POST.get("to", "").strip()
    if not text:
        return _bad("empty message")
    if len(text) > MAX_TEXT:
        return _bad(f"messages are limited to {MAX_TEXT} characters")
    sender = request.user.get_username()
    audience: dict[str, Any]
    if mode == "room":
        audience, target = {"broadcast": True}, "lobby"
    elif mode == "direct":
        if target == sender or not User.objects.filter(username=target, is_active=True).exists():
            return _bad("no such person")
        audience = {"users": [target, sender]}
    elif mode == "group":
        # Checked against the database, not the client: only members may speak in a group.
        if target not in _my_groups(request):
            return _bad("you are not a member of this group", status=403)
        audience = {"groups": [target]}
    else:
        return _bad("mode must be room, direct or group")
    message = {
        "id": uuid.uuid4().hex,
        "mode": mode,
        "from": sender,
        "to": target,
        "text": text,
        "at": timezone.now().isoformat(timespec="seconds"),
    }
    # A direct message to someone with no chat page open anywhere: they get an "unread messages" email. Chat lines
    # are never replayed (expire=0).
    if_offline = unread_notice(sender) if mode == "direct" else None
    RedisPublisher(facility=CHAT, **audience).publish_message(json.dumps(message), expire=0, if_offline=if_offline)
    get_connection().incr(MESSAGES_KEY)
    return JsonResponse({"ok": True, "id": message["id"]})


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "chatserver/dashboard.html", {"page": "dashboard", "tiles": DASHBOARD_TILES})


@login_required
def jobs(request: HttpRequest) -> HttpResponse:
    return render(request, "chatserver/jobs.html", {"page": "jobs"})


@login_required
@require_POST
def start_job(request: HttpRequest) -> JsonResponse:
    """Queue the long job on Celery; its progress reaches this user over their ``jobs`` websocket."""
    job_id = uuid.uuid4().hex[:12]
    title = (request.POST.get("title") or "Weekly operations report").strip()[:80]
    build_report.delay(request.user.get_username(), job_id, title)
    return JsonResponse({"ok": True, "job": job_id, "title": title})
