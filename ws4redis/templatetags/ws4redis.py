"""``{% websocket_url %}``: the absolute ``ws://`` / ``wss://`` URL of a facility, for the current request.

::

    {% load ws4redis %}
    <script>
      const client = new WS4Redis({url: "{% websocket_url 'chat' subscribe='broadcast,user' publish='broadcast' %}"});
    </script>

gives ``wss://example.com/ws/chat?subscribe-broadcast&subscribe-user&publish-broadcast`` on an HTTPS page. The
scheme follows ``request.is_secure()`` (so ``SECURE_PROXY_SSL_HEADER`` behind a TLS proxy is honoured) and the host
``request.get_host()`` (validated against ``ALLOWED_HOSTS``); the original's ``WEBSOCKET_URI`` context processor is
the same URL without facility and flags. ``echo=True`` adds ``&echo``; ``path='/ws/echo/'`` builds the URL of a
websocket view instead of a facility. ``as varname`` stores it instead of printing it.

Audiences are checked here (a typo fails when the template renders, not silently at connect); the facility is
URL-quoted. The tag needs the request in the context (``django.template.context_processors.request`` or a
``RequestContext``/``render(request, ...)``).

``signed=True`` (with ``expires=<seconds>`` for a signature that expires) adds the ``sig`` of a signed stream
(``ws4redis.integration.streams``); it fails when the template renders if ``WS4REDIS_SIGNED_STREAMS`` does not cover
the facility.

Live HTML (``ws4redis.integration.fragments``, docs/live-html.md): ``{% htmx_stream_from 'board' %}`` renders the
element htmx's
``ws`` extension connects from (``<div hx-ext="ws" ws-connect="...">``), ``{% turbo_stream_from 'board' %}`` a
``<turbo-stream-source src="...">``; both subscribe to ``broadcast`` unless ``subscribe=`` says otherwise, take
``signed``/``expires``, and add ``ws4redis/live.js`` once per page (reconnects Turbo's socket, and htmx's after a
server's graceful restart; ``script=False`` leaves it out).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.template.base import FilterExpression, Parser, Token
from django.template.context import Context
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ws4redis import settings
from ws4redis.broker.audience import AUDIENCES
from ws4redis.integration.streams import sign_stream

__all__ = ["build_websocket_url", "htmx_stream_from", "turbo_stream_from", "websocket_url"]

register = template.Library()

_OPTIONS = ("subscribe", "publish", "echo", "path", "signed", "expires")
_LIVE_OPTIONS = ("subscribe", "signed", "expires", "script")
_SCRIPT_DONE = "_ws4redis_live_script"  # request attribute: live.js was added to this page already


def _audiences(value: Any, what: str) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    unknown = [name for name in names if name not in AUDIENCES]
    if unknown:
        raise template.TemplateSyntaxError(
            f"websocket_url: unknown {what} audience {unknown[0]!r} (one of {', '.join(AUDIENCES)})"
        )
    return [a for a in AUDIENCES if a in names]  # the original's order, no repeats


def build_websocket_url(
    request: Any, facility: str = "", *, subscribe: Any = None, publish: Any = None, echo: bool = False,
    path: str | None = None, signed: bool = False, expires: float | None = None,
) -> str:
    """The absolute websocket URL (what the tag prints), usable from Python code as well."""
    scheme = "wss" if request.is_secure() else "ws"
    where = path if path is not None else f"{settings.get('WEBSOCKET_URL')}{quote(str(facility), safe='')}"
    flags = [f"subscribe-{a}" for a in _audiences(subscribe, "subscribe")]
    flags += [f"publish-{a}" for a in _audiences(publish, "publish")]
    if echo:
        flags.append("echo")
    if signed:
        if path is not None:
            raise template.TemplateSyntaxError("websocket_url: signed= signs a facility, not a path")
        try:
            flags.append("sig=" + quote(sign_stream(str(facility), expires_in=expires), safe=":"))
        except ImproperlyConfigured as exc:
            raise template.TemplateSyntaxError(str(exc)) from exc
    elif expires is not None:
        raise template.TemplateSyntaxError("websocket_url: expires= needs signed=True")
    query = "?" + "&".join(flags) if flags else ""
    return f"{scheme}://{request.get_host()}{where}{query}"


def _request_of(context: Context, tag: str) -> Any:
    request = context.get("request") or getattr(context, "request", None)  # a RequestContext carries it
    if request is None:
        raise template.TemplateSyntaxError(
            f"{tag} needs 'request' in the context ('request' context processor, or render(request, ...))"
        )
    return request


class WebsocketUrlNode(template.Node):
    def __init__(
        self, facility: FilterExpression | None, options: dict[str, FilterExpression], var: str | None
    ) -> None:
        self.facility = facility
        self.options = options
        self.var = var

    def render(self, context: Context) -> str:
        request = _request_of(context, "websocket_url")
        values = {name: expr.resolve(context) for name, expr in self.options.items()}
        facility = self.facility.resolve(context) if self.facility is not None else ""
        url = build_websocket_url(request, facility, **values)
        if self.var:
            context[self.var] = url
            return ""
        return url


def _parse(parser: Parser, token: Token, tag: str, allowed: tuple[str, ...]) -> tuple[
    FilterExpression | None, dict[str, FilterExpression], str | None
]:
    """``'facility' name=value ... [as var]`` of the tags below, checked when the template compiles."""
    bits = token.split_contents()[1:]
    var: str | None = None
    if len(bits) >= 2 and bits[-2] == "as":
        var = bits[-1]
        bits = bits[:-2]
    facility: FilterExpression | None = None
    options: dict[str, FilterExpression] = {}
    for bit in bits:
        name, sep, value = bit.partition("=")
        if sep:
            if name not in allowed:
                raise template.TemplateSyntaxError(f"{tag}: unknown option {name!r} (one of {', '.join(allowed)})")
            options[name] = parser.compile_filter(value)
        elif facility is None:
            facility = parser.compile_filter(bit)
        else:
            raise template.TemplateSyntaxError(f"{tag} takes one facility and keyword options")
    return facility, options, var


@register.tag("websocket_url")
def websocket_url(parser: Parser, token: Token) -> WebsocketUrlNode:
    """``{% websocket_url 'facility' subscribe='broadcast,user' publish='...' echo=True [path='...'] [as var] %}``."""
    facility, options, var = _parse(parser, token, "websocket_url", _OPTIONS)
    if facility is None and "path" not in options:
        raise template.TemplateSyntaxError("websocket_url needs a facility (or path=...)")
    return WebsocketUrlNode(facility, options, var)


class LiveStreamNode(template.Node):
    """The element htmx or Turbo connects from, for one facility (see the module docstring)."""

    def __init__(self, client: str, facility: FilterExpression, options: dict[str, FilterExpression],
                 var: str | None) -> None:
        self.client = client
        self.facility = facility
        self.options = options
        self.var = var

    def render(self, context: Context) -> str:
        tag = f"{self.client}_stream_from"
        request = _request_of(context, tag)
        values = {name: expr.resolve(context) for name, expr in self.options.items()}
        facility = str(self.facility.resolve(context))
        with_script = values.pop("script", True)
        values.setdefault("subscribe", "broadcast")
        url = build_websocket_url(request, facility, **values)
        if self.client == "htmx":
            element = format_html('<div hx-ext="ws" ws-connect="{}" data-ws4redis-live="{}" hidden></div>',
                                  url, facility)
        else:
            element = format_html('<turbo-stream-source src="{}" data-ws4redis-live="{}"></turbo-stream-source>',
                                  url, facility)
        if with_script and not getattr(request, _SCRIPT_DONE, False):
            setattr(request, _SCRIPT_DONE, True)
            element = format_html('{}<script src="{}" defer></script>', element, static("ws4redis/live.js"))
        if self.var:
            context[self.var] = element
            return ""
        return SafeString(element)


def _live_tag(client: str) -> Any:
    def compile_tag(parser: Parser, token: Token) -> LiveStreamNode:
        tag = f"{client}_stream_from"
        facility, options, var = _parse(parser, token, tag, _LIVE_OPTIONS)
        if facility is None:
            raise template.TemplateSyntaxError(f"{tag} needs a facility")
        return LiveStreamNode(client, facility, options, var)

    compile_tag.__doc__ = (
        f"``{{% {client}_stream_from 'facility' [subscribe='broadcast,user'] [signed=True [expires=3600]] "
        "[script=False] [as var] %}``."
    )
    return compile_tag


htmx_stream_from = register.tag("htmx_stream_from", _live_tag("htmx"))
turbo_stream_from = register.tag("turbo_stream_from", _live_tag("turbo"))
