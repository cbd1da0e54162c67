"""The session's states: one table of legal transitions, and illegal moves raise (a driver's bug, never a client's)."""

from __future__ import annotations

import pytest

from ws4redis import history
from ws4redis.core import TRANSITIONS, Config, IllegalTransition, Session, State
from ws4redis.core.protocol import protocol_for
from ws4redis.core.state import check


def session() -> Session:
    return Session(Config(), protocol_for(None, heartbeat=None, prefix=None), listen=["c"], publish=[],
                   recovery=history.recovery_for([]))


def test_every_state_has_a_row_and_closed_is_final() -> None:
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.CLOSED] == {State.CLOSED}
    assert State.OPENING not in set().union(*TRANSITIONS.values())  # nothing goes back to opening


@pytest.mark.parametrize(("current", "new"), [
    (current, new) for current in State for new in State if new not in TRANSITIONS[current]
])
def test_a_move_outside_the_table_raises(current: State, new: State) -> None:
    with pytest.raises(IllegalTransition, match=f"from {current.value} to {new.value}"):
        check(current, new)


def test_opening_twice_raises() -> None:
    s = session()
    s.opened("f")
    with pytest.raises(IllegalTransition):
        s.opened("f")


def test_a_closed_session_cannot_open_and_ignores_everything_else() -> None:
    s = session()
    s.opened("f")
    s.closed()
    with pytest.raises(IllegalTransition):
        s.opened("f")
    assert not s.close(1000, "") and not s.revoke() and not s.shutdown(1) and not s.hub_reconnected()
    s.receive(b"x" * 10_000_000, text=True, allow=lambda: False)
    assert s.take() == [] and s.state is State.CLOSED
    s.closed()  # idempotent teardown


def test_close_moves_to_closing_once() -> None:
    s = session()
    s.opened("f")
    assert s.close(4000, "a") is True
    assert s.close(4001, "b") is False
    assert s.state is State.CLOSING
    s.closed()
    assert s.state is State.CLOSED
