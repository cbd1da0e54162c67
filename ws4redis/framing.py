"""Server frames, encoded by wsproto, once per message however many sockets it goes to.

uWSGI's ``websocket_send`` writes one frame per call: one system call per message per socket, over half of a busy
worker's time (bench/). Frames here are built by wsproto's frame encoder (never by hand), cached on the shared
``Delivery``, and a socket's whole queue goes out in one write.
"""

from __future__ import annotations

from wsproto.frame_protocol import FrameProtocol

__all__ = ["encode_frame"]

# Server side, no extensions: its frames are unmasked and the encoder keeps no state between complete messages.
_encoder = FrameProtocol(client=False, extensions=[])


def encode_frame(payload: bytes, *, text: bool) -> bytes:
    """One complete, unfragmented server frame carrying ``payload`` as a text or binary message."""
    return bytes(_encoder.send_data(payload.decode("utf-8") if text else payload, fin=True))
