"""Server frames, encoded by wsproto, once per message however many sockets it goes to.

Writing one frame per call costs one system call per message per socket, over half of a busy worker's time
(bench/). Frames here are built by wsproto's frame encoder (never by hand), cached on the shared ``Delivery``, and a
socket's whole queue goes out in one write. The transport's control frames come from the same encoder: it keeps no
state between complete frames, so one serves every socket of the worker and no socket carries an encoder of its own.
"""

from __future__ import annotations

from wsproto.frame_protocol import FrameProtocol

__all__ = ["close_frame", "encode_frame", "ping_frame", "pong_frame"]

# Server side, no extensions: its frames are unmasked and the encoder keeps no state between complete messages.
_encoder = FrameProtocol(client=False, extensions=[])


def encode_frame(payload: bytes, *, text: bool) -> bytes:
    """One complete, unfragmented server frame carrying ``payload`` as a text or binary message."""
    return bytes(_encoder.send_data(payload.decode("utf-8") if text else payload, fin=True))


def ping_frame(payload: bytes) -> bytes:
    return bytes(_encoder.ping(payload))


def pong_frame(payload: bytes | bytearray) -> bytes:
    return bytes(_encoder.pong(bytes(payload)))


def close_frame(code: int, reason: str) -> bytes:
    """A close frame; wsproto turns codes that may not be sent (1005, 1006, 1015) into what RFC 6455 allows."""
    return bytes(_encoder.close(code, reason))
