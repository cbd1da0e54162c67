"""Websocket views, hooks and a template page of the test project (issue 10's features, end to end)."""

from __future__ import annotations

import json
import time
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.template import engines

from ws4redis.decorators import accept_websocket, require_websocket


class EchoForm(forms.Form):
    """What the echo view accepts: a short text and how many times to repeat it."""

    text = forms.CharField(max_length=20)
    times = forms.IntegerField(min_value=1, max_value=3)


@accept_websocket
def echo(request: HttpRequest) -> HttpResponse | None:
    """Greets the (middleware-authenticated) user, then echoes form-validated input or says what is wrong."""
    if request.websocket is None:  # type: ignore[attr-defined]
        return HttpResponse("echo over plain HTTP: open a websocket to this URL\n", content_type="text/plain")
    ws = request.websocket  # type: ignore[attr-defined]
    user = request.user.get_username() if request.user.is_authenticated else None  # type: ignore[union-attr]
    ws.send_json({"hello": user})
    for message in ws:
        try:
            data = json.loads(message)
        except ValueError:
            ws.send_json({"ok": False, "errors": {"__all__": ["send a JSON object"]}})
            continue
        form = EchoForm(data if isinstance(data, dict) else {})
        if form.is_valid():
            ws.send_json({"ok": True, "echo": " ".join([form.cleaned_data["text"]] * form.cleaned_data["times"])})
        else:
            errors = {field: [e["message"] for e in errs] for field, errs in form.errors.get_json_data().items()}
            ws.send_json({"ok": False, "errors": errors})
    return None


@require_websocket
def members_only(request: HttpRequest) -> HttpResponse | None:
    """Refuses anonymous users with an ordinary 403 before the upgrade; echoes for the others."""
    if not request.user.is_authenticated:  # type: ignore[union-attr]
        return HttpResponseForbidden("members only")
    for message in request.websocket:  # type: ignore[attr-defined]
        request.websocket.send(message)  # type: ignore[attr-defined]
    return None


@require_websocket
def room(request: HttpRequest, name: str) -> None:
    """Listens to facility ``name`` (broadcast) and publishes what its client sends there: a chat room as a view."""
    ws = request.websocket  # type: ignore[attr-defined]
    if "ws4redis.v2" in ws.protocols:  # subscribed messages then come as v2 envelopes, notices as v2 messages
        ws.accept("ws4redis.v2")
    ws.subscribe(name, "broadcast")
    ws.send_json({"joined": name})
    for message in ws:
        ws.publish(name, message, broadcast=True)


def template_page(request: HttpRequest) -> HttpResponse:
    """Renders the ``{% websocket_url %}`` tag for this request."""
    page = engines["django"].from_string(
        "{% load ws4redis %}{% websocket_url 'chat' subscribe='broadcast,user' publish='broadcast' echo=True %}\n"
        "{% websocket_url 'news' as news %}{{ news }}\n"
        "{% websocket_url path='/ws/echo/' %}"
    )
    return HttpResponse(page.render({}, request), content_type="text/plain")


# -- WS4REDIS_HOOKS -----------------------------------------------------------------------------------------------
def shout(request: Any, subscription: Any, data: bytes) -> bytes | None:
    """A message hook: upper-cases what clients publish, signs it with the user, drops 'spam'."""
    text = data.decode()
    if text == "spam":
        return None
    user = request.user.get_username() if getattr(request.user, "is_authenticated", False) else "anonymous"
    return f"{user}: {text.upper()}".encode()


def explode(request: Any, subscription: Any, data: bytes) -> bytes:
    """A message hook that fails on 'boom' (its socket is closed; no other)."""
    if data == b"boom":
        raise RuntimeError("the hook exploded")
    return data


def dawdle(request: Any, subscription: Any, data: bytes) -> bytes:
    """A slow message hook (cooperative under gevent: blocks only its own socket); 'forever' overruns the timeout."""
    time.sleep(30 if data == b"forever" else 1.0)
    return data


def only_members(request: Any, subscription: Any) -> None:
    """A connect hook refusing anonymous clients (403 before the upgrade)."""
    if not getattr(request.user, "is_authenticated", False):
        raise PermissionDenied("members only (connect hook)")


def linger(request: Any, subscription: Any, data: bytes = b"") -> None:
    """A connect or message hook that overruns any WS4REDIS_HOOK_TIMEOUT of the tests (a slow service behind it)."""
    time.sleep(6)


def record_join(request: Any, subscription: Any) -> None:
    """A connect hook publishing who joined, to the facility's 'joins' companion."""
    from ws4redis.publisher import RedisPublisher

    RedisPublisher(facility=f"{subscription.facility}-joins", broadcast=True).publish_message(
        f"joined: {request.user.get_username()}"
    )


def record_leave(request: Any, subscription: Any) -> None:
    """A disconnect hook publishing who left."""
    from ws4redis.publisher import RedisPublisher

    RedisPublisher(facility=f"{subscription.facility}-joins", broadcast=True).publish_message(
        f"left: {request.user.get_username()}"
    )
