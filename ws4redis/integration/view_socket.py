"""What ``request.websocket`` of a websocket view is on every runtime: the API a view sees, written once.

A view's socket under gevent (``ws4redis.servers.websocket_views.WebSocket``) and under ASGI
(``ws4redis.servers.asgi.views.ThreadWebSocket``) differ only in how they receive, send and wait: each gives
``receive``,
``_send`` and a ``_wake`` event; the conveniences built on them, the channel names of a view's ``subscribe``, a
view's ``publish`` and the hub's callbacks (which only hand over to the socket's ``Session`` and wake it) are here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ws4redis import configuration, metrics
from ws4redis.broker.audience import AUDIENCES, SELF, channel_names
from ws4redis.core import Delivery, Session, is_text
from ws4redis.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = ["ViewSocket"]


class _Wake(Protocol):
    """A threading or gevent event: what a view's socket waits on in ``receive``."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def wait(self, timeout: float | None = None) -> Any: ...


class ViewSocket:
    """The view-facing half of a view's socket; a subclass receives, sends and waits on its runtime."""

    request: HttpRequest
    closed: bool
    _session: Session | None
    _wake: _Wake

    def receive(self, timeout: float | None = None) -> bytes | None:
        raise NotImplementedError

    def _send(self, data: bytes, *, text: bool) -> None:
        raise NotImplementedError

    def receive_text(self, timeout: float | None = None) -> str | None:
        """The next message decoded as UTF-8 (``None`` on timeout)."""
        data = self.receive(timeout)
        return None if data is None else data.decode("utf-8", errors="replace")

    def receive_json(self, timeout: float | None = None) -> Any:
        """The next message parsed as JSON; ``ValueError`` when it is not JSON. ``None`` on timeout."""
        data = self.receive(timeout)
        return None if data is None else json.loads(data)

    def __iter__(self) -> Iterator[bytes]:
        """Every message until the client closes the socket."""
        while True:
            try:
                data = self.receive()
            except ConnectionClosed:
                return
            if data is not None:
                yield data

    def send(self, data: str | bytes) -> None:
        """Send one message: ``str`` as a text frame; ``bytes`` as ws4redis sends payloads everywhere, a text frame
        when valid UTF-8, else a binary frame (so echoing what ``receive`` returned keeps text as text)."""
        if isinstance(data, str):
            self._send(data.encode(), text=True)
        else:
            self._send(bytes(data), text=is_text(bytes(data)))

    def send_bytes(self, data: bytes) -> None:
        """Send ``data`` as a binary frame, whatever it contains."""
        self._send(bytes(data), text=False)

    def send_json(self, value: Any) -> None:
        """Send ``value`` as compact JSON text (``DjangoJSONEncoder``: dates, decimals, UUIDs)."""
        from django.core.serializers.json import DjangoJSONEncoder

        self.send(json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False))

    def _channels_of(self, facility: str, audiences: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
        """The audiences a view's ``subscribe`` means (default broadcast) and their channels. The view is trusted
        code, so no policy applies; ``user``, ``group`` and ``session`` mean this request's own (``SELF``)."""
        chosen = audiences or ("broadcast",)
        unknown = [a for a in chosen if a not in AUDIENCES]
        if unknown:
            raise ValueError(f"unknown audience {unknown[0]!r} (one of {', '.join(AUDIENCES)})")
        channels = channel_names(
            prefix=configuration.current().prefix, facility=facility, request=self.request,
            broadcast="broadcast" in chosen,
            users=[SELF] if "user" in chosen else [],
            groups=[SELF] if "group" in chosen else [],
            sessions=[SELF] if "session" in chosen else [],
        )
        return tuple(chosen), channels

    def publish(self, facility: str, message: str | bytes, **audience: Any) -> None:
        """Publish like ``RedisPublisher(facility=..., request=<this request>, **audience)`` (``SELF`` works)."""
        from ws4redis.broker.publisher import RedisPublisher

        RedisPublisher(facility=facility, request=self.request, **audience).publish_message(message)

    # -- the hub's side: queue and wake, never send -------------------------------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        session = self._session
        if session is None or self.closed:
            metrics.done(delivery)  # every way out counts the delivery done for this socket, once
            return
        if session.deliver(delivery):
            self._wake.set()

    def hub_reconnected(self) -> None:
        """Messages published while the hub was away are lost; a v2 client is told, as on the no-code path."""
        if self._session is not None and self._session.hub_reconnected():
            self._wake.set()

    def revoke(self) -> None:
        """Logged out, session ended: a v2 client is told (``revoked``), then the socket closes with 4003."""
        if self._session is not None and self._session.revoke():
            self._wake.set()

    def shutdown(self, reconnect_in_ms: int) -> None:
        """Drained: a v2 client is told when to come back (``shutdown``), then the socket closes with 1001."""
        if self._session is not None and self._session.shutdown(reconnect_in_ms):
            self._wake.set()
