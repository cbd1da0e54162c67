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
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django import template
from django.template.base import FilterExpression, Parser, Token
from django.template.context import Context

from ws4redis import settings
from ws4redis.audience import AUDIENCES

__all__ = ["build_websocket_url", "websocket_url"]

register = template.Library()

_OPTIONS = ("subscribe", "publish", "echo", "path")


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
    path: str | None = None,
) -> str:
    """The absolute websocket URL (what the tag prints), usable from Python code as well."""
    scheme = "wss" if request.is_secure() else "ws"
    where = path if path is not None else f"{settings.get('WEBSOCKET_URL')}{quote(str(facility), safe='')}"
    flags = [f"subscribe-{a}" for a in _audiences(subscribe, "subscribe")]
    flags += [f"publish-{a}" for a in _audiences(publish, "publish")]
    if echo:
        flags.append("echo")
    query = "?" + "&".join(flags) if flags else ""
    return f"{scheme}://{request.get_host()}{where}{query}"


class WebsocketUrlNode(template.Node):
    def __init__(
        self, facility: FilterExpression | None, options: dict[str, FilterExpression], var: str | None
    ) -> None:
        self.facility = facility
        self.options = options
        self.var = var

    def render(self, context: Context) -> str:
        request = context.get("request") or getattr(context, "request", None)  # a RequestContext carries it
        if request is None:
            raise template.TemplateSyntaxError(
                "websocket_url needs 'request' in the context ('request' context processor, or render(request, ...))"
            )
        values = {name: expr.resolve(context) for name, expr in self.options.items()}
        facility = self.facility.resolve(context) if self.facility is not None else ""
        url = build_websocket_url(request, facility, **values)
        if self.var:
            context[self.var] = url
            return ""
        return url


@register.tag("websocket_url")
def websocket_url(parser: Parser, token: Token) -> WebsocketUrlNode:
    """``{% websocket_url 'facility' subscribe='broadcast,user' publish='...' echo=True [path='...'] [as var] %}``."""
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
            if name not in _OPTIONS:
                raise template.TemplateSyntaxError(
                    f"websocket_url: unknown option {name!r} (one of {', '.join(_OPTIONS)})"
                )
            options[name] = parser.compile_filter(value)
        elif facility is None:
            facility = parser.compile_filter(bit)
        else:
            raise template.TemplateSyntaxError("websocket_url takes one facility and keyword options")
    if facility is None and "path" not in options:
        raise template.TemplateSyntaxError("websocket_url needs a facility (or path=...)")
    return WebsocketUrlNode(facility, options, var)
