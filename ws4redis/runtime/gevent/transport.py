"""Websocket transports: one small interface, one implementation per server.

``Transport`` is all the connection loop knows about a socket, so the loop and the hub run unchanged under uWSGI
and under any other server. No RFC 6455 framing is written here: uWSGI or wsproto does it.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Transport"]


class Transport(Protocol):
    """One websocket, before and after the upgrade."""

    def accept(self, subprotocol: str | None) -> None:
        """Complete the upgrade (101), naming ``subprotocol`` when one was chosen."""

    def fileno(self) -> int:
        """The socket's file descriptor, watched for readability by the connection loop."""

    def receive_nowait(self) -> bytes | None:
        """One received message, or ``None`` when nothing is buffered; raises ``ConnectionClosed`` when the peer left.

        Control frames (ping, pong, close) are handled inside, within the control-frame allowance (a flood closes the
        socket with 1008); only data messages come out. ``last_text`` then says whether it came as a text or a binary
        message.
        """

    @property
    def last_text(self) -> bool:
        """Whether the message ``receive_nowait`` returned last came as text (valid UTF-8) rather than binary: the frame
        type a client chose travels with its publish (``ws4redis.core.wire``)."""

    @property
    def pending(self) -> bool:
        """Whether ``receive_nowait`` returned ``None`` with frames still buffered (its per-call frame budget was
        spent): call it again after yielding to the other sockets, without waiting for readability."""

    def allow_request(self) -> bool:
        """Spend one token of the socket's allowance for control frames and non-publish requests
        (``WS4REDIS_CONTROL_RATE``); ``False`` once it is exhausted."""

    def send(self, data: bytes, *, text: bool) -> None:
        """Send one message as a text or binary frame; raises ``ConnectionClosed`` when the peer left."""

    def send_raw(self, frames: bytes) -> None:
        """Write frames already encoded by ``ws4redis.runtime.gevent.framing`` (server frames, no extensions) in one
        write, after
        anything ``send_nowait`` left; the connection loop batches a whole queue through it."""

    def send_nowait(self, frames: bytes) -> bool:
        """Write encoded frames without waiting, from any greenlet; ``False`` (nothing written) when they must wait
        for the connection's own greenlet. A partial write leaves a ``backlog`` that the next send writes first."""

    @property
    def backlog(self) -> bool:
        """Whether part of a ``send_nowait`` is still unwritten."""

    def idle_check(self, now: float) -> bool:
        """The periodic liveness check of a websocket whose connection has no greenlet: ping a silent peer without
        waiting; ``True`` when the connection's greenlet must run a full round instead
        (``ws4redis.runtime.gevent.idle``)."""

    def take_nowait(self) -> bool:
        """Read what the peer of a websocket without a greenlet sent, from the event loop, never waiting or writing;
        ``True`` when it was all handled there (a pong), else the greenlet must run ``receive_nowait``."""

    def close(self, code: int, reason: str = "") -> None:
        """End the websocket, with ``code`` where the transport can send one. Never raises."""
