"""Pure logic of facilities, flags and channel names (no servers)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ws4redis.audience import MEMBEROF_KEY, SELF, channel_names, parse_flags, validate_facility
from ws4redis.exceptions import UnknownFacility


class FakeSession(dict):  # a session is a mapping with a key: pure logic needs nothing more
    session_key = "s3cr3t"


def make_request(username: str | None) -> SimpleNamespace:
    user = SimpleNamespace(is_authenticated=username is not None, get_username=lambda: username)
    session = FakeSession({MEMBEROF_KEY: ["red", "blue"]})
    return SimpleNamespace(user=user, session=session)


def test_channel_names_are_the_originals() -> None:
    names = channel_names(prefix="p", facility="chat", broadcast=True, users=["ann"], groups=["red"], sessions=["k"])
    assert names == ["p:broadcast:chat", "p:group:red:chat", "p:user:ann:chat", "p:session:k:chat"]
    assert channel_names(prefix=None, facility="chat", broadcast=True) == ["broadcast:chat"]


def test_self_resolves_against_the_request() -> None:
    request = make_request("ann")
    names = channel_names(prefix=None, facility="f", request=request, users=[SELF], groups=[SELF], sessions=[SELF])
    assert names == ["group:red:f", "group:blue:f", "user:ann:f", "session:s3cr3t:f"]


def test_anonymous_self_never_becomes_a_shared_channel() -> None:
    request = make_request(None)
    assert channel_names(prefix=None, facility="f", request=request, users=[SELF], groups=[SELF]) == []


def test_user_objects_and_legacy_forms() -> None:
    user = SimpleNamespace(get_username=lambda: "bob")
    assert channel_names(prefix=None, facility="f", users=[user, "bob"]) == ["user:bob:f"]
    assert channel_names(prefix=None, facility="f", users="eve") == ["user:eve:f"]
    with pytest.raises(ValueError):
        channel_names(prefix=None, facility="f", users=42)


@pytest.mark.parametrize("name", ["chat", "room-1", "a.b_c", "dashboard/eu", "ünïcode"])
def test_valid_facilities(name: str) -> None:
    assert validate_facility(name, max_length=100) == name


@pytest.mark.parametrize("name", ["", "a:b", "a b", "x*", "/abs", "tab\there", "new\nline", "x" * 101, "a[1]"])
def test_invalid_facilities(name: str) -> None:
    with pytest.raises(UnknownFacility) as info:
        validate_facility(name, max_length=100)
    assert info.value.status == 404


def test_parse_flags() -> None:
    sub = parse_flags("f", "subscribe-broadcast&Subscribe-User&publish-group&echo&unknown=1")
    assert sub.subscribe == {"broadcast", "user"}
    assert sub.publish == {"group"}
    assert sub.echo
    assert sub.flags == ["subscribe-broadcast", "subscribe-user", "publish-group"]
    assert sub.with_flags(["subscribe-user"]).flags == ["subscribe-user"]
