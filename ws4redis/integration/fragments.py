"""Live HTML: render a fragment once, publish it to any mix of audiences; htmx and Turbo Streams apply it.

The legacy wire protocol delivers a published payload unchanged as a text frame, and that is exactly what htmx's
``ws`` extension (out-of-band swaps) and Turbo's ``<turbo-stream-source>`` (stream actions) consume. So a live page
needs no consumer and no per-connection code: whatever changes the data (a view, a Celery task, a management
command, an after-commit model hook) renders the fragment once and publishes it::

    from ws4redis import fragments

    html = fragments.turbo_stream("append", target="incidents", template="board/_row.html", context={"i": incident})
    fragments.publish(html, facility="board", broadcast=True)                  # one facility, any audiences
    fragments.publish(html, {"facility": "board", "broadcast": True},          # several facilities,
                      {"facility": f"incident-{incident.pk}", "broadcast": True})  # still one Redis round trip

``htmx_oob`` takes the same actions (``append``, ``prepend``, ``replace``, ``update``, ``remove``, ``before``,
``after``) and the same ``target`` (an element id) or ``targets`` (a CSS selector), so a project can switch front-end
without touching its publishing code.

Escaping is Django's: a template is rendered with autoescape, ``html=`` must be markup Django already considers safe
(``render_to_string``, ``format_html``, ``mark_safe`` of your own literal); a plain ``str`` is escaped as text.
Targets and selectors go into attributes through ``format_html``. The only HTML this module reads is the first
top-level tag of a rendered fragment, with the standard library's tokenizer, to choose a wrapper htmx can parse
(a ``<tr>`` inside a ``<div>`` would be dropped by the browser) and to mark the element ``replace`` swaps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from html.parser import HTMLParser
from typing import Any

from django.db import transaction
from django.template.loader import render_to_string
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from ws4redis import metrics
from ws4redis.broker.publisher import RedisPublisher

__all__ = ["ACTIONS", "htmx_oob", "publish", "publish_on_commit", "render", "turbo_stream"]

ACTIONS = ("append", "prepend", "replace", "update", "remove", "before", "after")

# Turbo's action -> htmx's swap style (https://htmx.org/attributes/hx-swap-oob/): the same seven operations.
_HTMX_SWAP = {
    "append": "beforeend",
    "prepend": "afterbegin",
    "replace": "outerHTML",
    "update": "innerHTML",
    "remove": "delete",
    "before": "beforebegin",
    "after": "afterend",
}

# The element htmx parses a fragment's content inside must be one that may contain it: table parts and options
# lose their tags inside a <div> (the HTML parser drops them), so they get the parent the parser expects.
_WRAPPER = {
    "tr": "tbody",
    "td": "tr",
    "th": "tr",
    "thead": "table",
    "tbody": "table",
    "tfoot": "table",
    "caption": "table",
    "colgroup": "table",
    "col": "colgroup",
    "option": "select",
    "optgroup": "select",
}

PublisherSpec = RedisPublisher | Mapping[str, Any]
Markup = str | Iterable[str]


def render(*, template: str | None = None, context: Mapping[str, Any] | None = None, request: Any = None,
           html: str | None = None) -> SafeString:
    """The fragment's markup: ``template`` rendered with ``context`` (autoescaped), or ``html``.

    ``html`` that Django does not consider safe (a plain ``str``) is escaped, so user data passed by mistake shows
    as text instead of becoming markup.
    """
    if (template is None) == (html is None):
        raise ValueError("give either template= (with context=) or html=")
    if template is not None:
        return mark_safe(render_to_string(template, dict(context or {}), request=request))
    assert html is not None
    return SafeString(conditional_escape(html))


def _selector(target: str | None, targets: str | None) -> str:
    """The CSS selector of the element(s) an action applies to: ``#id`` (escaped as CSS.escape does) or ``targets``."""
    if (target is None) == (targets is None):
        raise ValueError("give either target= (an element id) or targets= (a CSS selector)")
    if targets is not None:
        if not targets.strip():
            raise ValueError("targets= must be a CSS selector")
        return targets
    assert target is not None
    if not target or any(c.isspace() for c in target):
        raise ValueError(f"target= must be an element id without whitespace, not {target!r}")
    return "#" + _css_escape(target)


def _css_escape(ident: str) -> str:
    """``ident`` as a CSS identifier, as the browser's ``CSS.escape`` writes it (htmx looks targets up with
    ``querySelectorAll``, so an id such as ``7:a`` must not become another selector)."""
    if ident == "-":
        return "\\-"
    out: list[str] = []
    for index, char in enumerate(ident):
        code = ord(char)
        digit = "0" <= char <= "9"
        if code == 0:
            out.append("\ufffd")
        elif code < 0x20 or code == 0x7F or (digit and (index == 0 or (index == 1 and ident[0] == "-"))):
            out.append(f"\\{code:x} ")
        elif code < 0x80 and not (char.isalnum() or char in "-_"):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")


def turbo_stream(action: str, *, target: str | None = None, targets: str | None = None,
                 template: str | None = None, context: Mapping[str, Any] | None = None, request: Any = None,
                 html: str | None = None) -> SafeString:
    """One ``<turbo-stream>`` element: ``action`` on ``target`` (an id) or ``targets`` (a CSS selector).

    Every action but ``remove`` carries the rendered content in a ``<template>``, as Turbo expects.
    """
    _check_action(action)
    _selector(target, targets)  # the same checks as for htmx
    where = format_html(' target="{}"', target) if target is not None else format_html(' targets="{}"', targets)
    if action == "remove":
        if template is not None or html is not None:
            raise ValueError("remove takes no content")
        return format_html('<turbo-stream action="remove"{}></turbo-stream>', where)
    content = render(template=template, context=context, request=request, html=html)
    return format_html('<turbo-stream action="{}"{}><template>{}</template></turbo-stream>', action, where, content)


class _FirstTag(HTMLParser):
    """Finds the first top-level start tag of a fragment (name, attributes, where it starts) and counts roots."""

    _VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                       "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.first: tuple[str, list[tuple[str, str | None]], tuple[int, int]] | None = None
        self.roots = 0
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._open:
            self.roots += 1
            if self.first is None:
                self.first = (tag, attrs, self.getpos())
        if tag not in self._VOID:
            self._open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._open:
            self.roots += 1
            if self.first is None:
                self.first = (tag, attrs, self.getpos())

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:  # a stray end tag closes nothing (as the browser's parser ignores it)
            while self._open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if not self._open and data.strip():
            self.roots += 1  # top-level text: htmx would swap it by no id


def _scan(content: str) -> _FirstTag:
    scanner = _FirstTag()
    scanner.feed(content)
    scanner.close()
    return scanner


def _offset(text: str, position: tuple[int, int]) -> int:
    line, column = position
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return starts[line - 1] + column


def htmx_oob(action: str, *, target: str | None = None, targets: str | None = None,
             template: str | None = None, context: Mapping[str, Any] | None = None, request: Any = None,
             html: str | None = None) -> SafeString:
    """An htmx out-of-band swap (``hx-swap-oob``) doing ``action`` on ``target`` (an id) or ``targets`` (CSS).

    ``replace`` marks the fragment's one top-level element (it becomes the new element); the other actions wrap the
    content in an element whose content htmx inserts. htmx's ``ws`` extension swaps every top-level element of a
    message this way.
    """
    _check_action(action)
    spec = f"{_HTMX_SWAP[action]}:{_selector(target, targets)}"
    if action == "remove":
        if template is not None or html is not None:
            raise ValueError("remove takes no content")
        return format_html('<div hx-swap-oob="{}"></div>', spec)
    content = render(template=template, context=context, request=request, html=html)
    scan = _scan(content)
    if action != "replace":
        wrapper = _WRAPPER.get(scan.first[0], "div") if scan.first is not None else "div"
        return format_html('<{} hx-swap-oob="{}">{}</{}>', mark_safe(wrapper), spec, content, mark_safe(wrapper))
    if scan.first is None or scan.roots != 1:
        raise ValueError("replace needs a fragment of exactly one top-level element (it replaces the target)")
    tag, attrs, position = scan.first
    if any(name in ("hx-swap-oob", "data-hx-swap-oob") for name, _ in attrs):
        raise ValueError("the fragment already has hx-swap-oob: publish it with publish() as it is")
    at = _offset(content, position) + 1 + len(tag)  # right after "<tag" of the root element
    return mark_safe(content[:at] + format_html(' hx-swap-oob="{}"', spec) + content[at:])


_TABLE_PARTS = frozenset({"table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "td", "th"})


def _check_htmx_message(parts: list[str]) -> None:
    """Refuse an htmx message that browsers would parse with parts dropped.

    htmx parses a message inside one ``<template>``, whose parser picks its mode from the first element: table parts
    after a ``<div>`` (or a ``<div>`` after table parts) are silently dropped. Such parts go in messages of their own.
    """
    kinds = set()
    for part in parts:
        scan = _scan(part)
        if scan.first is None or not any(name in ("hx-swap-oob", "data-hx-swap-oob") for name, _ in scan.first[1]):
            return  # not (only) htmx out-of-band swaps: nothing known to check
        kinds.add(scan.first[0] if scan.first[0] in _TABLE_PARTS else "flow")
    if len(kinds) > 1:
        raise ValueError(
            f"htmx would drop parts of this message (its top-level elements are {sorted(kinds)}): publish table "
            "rows and cells in a message of their own"
        )


def _publishers(specs: tuple[PublisherSpec, ...], audience: dict[str, Any]) -> list[RedisPublisher]:
    if audience:
        specs = (*specs, audience)
    if not specs:
        raise ValueError("publish needs an audience: facility=... with broadcast/users/groups/sessions, or specs")
    return [spec if isinstance(spec, RedisPublisher) else RedisPublisher(**dict(spec)) for spec in specs]


def publish(markup: Markup, *specs: PublisherSpec, expire: int | None = None, **audience: Any) -> int:
    """Publish rendered ``markup`` (one fragment or several, sent as one message) to every audience given.

    ``specs`` are ``RedisPublisher`` objects or their keyword arguments (``{"facility": ..., "users": [...]}``);
    keyword arguments of this call are one more spec. The markup was rendered once, before this call; it is encoded
    once and published to every channel in one Redis round trip, with the kept last message (``expire``, default
    ``WS4REDIS_EXPIRE``) that a page gets when it connects or reconnects. Returns how many channels it went to.
    """
    if isinstance(markup, str):
        message = markup
    else:
        parts = list(markup)
        if len(parts) > 1:
            _check_htmx_message(parts)
        message = "".join(parts)
    publishers = _publishers(specs, audience)
    if len(publishers) == 1:
        publishers[0].publish_message(message, expire=expire)
        return len(publishers[0].channels)
    pipe = publishers[0].connection.pipeline(transaction=False)  # the publishers share it: one round trip
    for publisher in publishers:
        publisher.pipeline_publish_message(message, pipeline=pipe, expire=expire)
    pipe.execute()
    channels = sum(len(p.channels) for p in publishers)
    metrics.PUBLISHED_BY_SERVER.inc(channels)  # as publish_message counts its own
    return channels


def publish_on_commit(markup: Markup | Callable[[], Markup], *specs: PublisherSpec, using: str | None = None,
                      expire: int | None = None, **audience: Any) -> None:
    """``publish`` once the current transaction of ``using`` commits; nothing if it rolls back.

    ``markup`` may be a callable rendering it at commit time (so a rolled-back change renders nothing, and the
    fragment shows what was committed, related rows included). Outside a transaction it publishes at once.
    """

    def send() -> None:
        publish(markup() if callable(markup) else markup, *specs, expire=expire, **audience)

    transaction.on_commit(send, using=using)
