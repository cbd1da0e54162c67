"""The states of a session and, in one table, the transitions between them that are legal."""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "IllegalTransition", "State", "check"]


class State(enum.Enum):
    """Where a websocket session is.

    ``OPENING``: the driver subscribes and upgrades; nothing is sent yet. ``OPEN``: messages flow both ways.
    ``CLOSING``: a close was decided (by the client's behaviour, the server, a revocation); the driver sends the
    notices queued before it and the close frame, nothing else. ``CLOSED``: the driver tore the socket down.
    """

    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


#: The only legal moves. A socket may close while opening (the client left during the upgrade) or straight from
#: open (the peer went away: no closing handshake of ours), and every state may close again (idempotent teardown).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPENING: frozenset({State.OPEN, State.CLOSING, State.CLOSED}),
    State.OPEN: frozenset({State.CLOSING, State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset({State.CLOSED}),
}


class IllegalTransition(RuntimeError):
    """A driver fed an event the session's state does not allow (a programming error in the driver, never the
    client's doing: everything a client can send is handled in every state)."""


def check(current: State, new: State) -> State:
    """``new`` if the table allows moving there from ``current``; raises ``IllegalTransition`` otherwise."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"a session cannot go from {current.value} to {new.value}")
    return new
