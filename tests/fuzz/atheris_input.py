"""Coverage-guided fuzzing (atheris, libFuzzer) of everything a client controls, beside the hypothesis properties.

Not part of the pytest run (it is open-ended). Run, bounded:

    .venv/bin/pip install atheris
    DJANGO_SETTINGS_MODULE=tests.project.settings .venv/bin/python tests/fuzz/atheris_input.py -runs=200000

Each input is split into a query string, a facility, handshake header values, an Origin and a v2 client frame; every
outcome must be a value or a documented refusal (HandshakeRefused with its status), never another exception. The frame
is also read as a binary frame (published as is) and as a message from Redis (``ws4redis.wire``), where a forged
envelope must come back as the client's bytes.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import django

    django.setup()
    from ws4redis import wire
    from ws4redis.audience import parse_flags, validate_facility
    from ws4redis.auth import check_origin, check_upgrade, choose_subprotocol
    from ws4redis.exceptions import HandshakeRefused
    from ws4redis.protocol import V2Protocol

PROTOCOL = V2Protocol(prefix="p", heartbeat="--hb--")


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    query = fdp.ConsumeUnicodeNoSurrogates(64)
    facility = fdp.ConsumeUnicodeNoSurrogates(32)
    environ = {
        "REQUEST_METHOD": fdp.PickValueInList(["GET", "POST", fdp.ConsumeUnicodeNoSurrogates(4)]),
        "HTTP_UPGRADE": fdp.PickValueInList(["websocket", fdp.ConsumeUnicodeNoSurrogates(12)]),
        "HTTP_CONNECTION": fdp.PickValueInList(["Upgrade", "keep-alive, Upgrade", fdp.ConsumeUnicodeNoSurrogates(16)]),
        "HTTP_SEC_WEBSOCKET_VERSION": fdp.PickValueInList(["13", fdp.ConsumeUnicodeNoSurrogates(3)]),
        "HTTP_SEC_WEBSOCKET_KEY": fdp.ConsumeUnicodeNoSurrogates(30),
        "HTTP_SEC_WEBSOCKET_PROTOCOL": fdp.ConsumeUnicodeNoSurrogates(30),
        "HTTP_ORIGIN": fdp.ConsumeUnicodeNoSurrogates(40),
        "HTTP_HOST": fdp.ConsumeUnicodeNoSurrogates(20),
    }
    frame = fdp.ConsumeBytes(fdp.remaining_bytes())
    subscription = parse_flags("f", query)
    assert subscription.with_flags(subscription.flags) == subscription
    for call in (
        lambda: validate_facility(facility, max_length=100),
        lambda: check_upgrade(environ),
        lambda: check_origin(environ),
    ):
        try:
            call()
        except HandshakeRefused as refusal:
            assert refusal.status in (400, 403, 404, 426)
    assert choose_subprotocol(environ) in (None, "ws4redis.v2")
    PROTOCOL.incoming(frame)
    assert PROTOCOL.incoming(frame, text=False).publish == frame or frame == b"--hb--"
    assert isinstance(wire.decode(frame), (wire.Record, wire.Bad))
    assert wire.decode(wire.encode(frame, text=False)) == wire.Record(frame, False, None, False)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
