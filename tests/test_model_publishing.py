"""Model publishing after commit (``ws4redis.model_publishing``), received by a real websocket on uWSGI."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from tests.conftest import People, assert_silent, connect
from tests.modelapp.models import Note, Ticket
from tests.servers import UwsgiServer
from ws4redis.model_publishing import publish_model_changes, publish_on_commit


class Rollback(Exception):
    pass


def test_rolled_back_save_publishes_nothing_committed_save_publishes_once(server: UwsgiServer, people: People) -> None:
    ws = connect(server, "/ws/notes?subscribe-broadcast")
    with pytest.raises(Rollback), transaction.atomic():
        Note.objects.create(text="never happened")
        raise Rollback
    with transaction.atomic():
        note = Note.objects.create(text="hello")
        note.text = "hello again"  # a second save in the same transaction: its own message, after commit
        note.save()
    first, second = json.loads(ws.recv()), json.loads(ws.recv())  # the rolled-back one would have come first
    assert first["model"] == "modelapp.note" and first["action"] == "created" and first["pk"] == note.pk
    assert first["fields"]["text"] == "hello"  # the state that was saved, not the instance's state at commit
    assert second["action"] == "updated" and second["fields"]["text"] == "hello again"
    assert_silent(ws)


def test_nothing_is_published_before_the_commit(server: UwsgiServer, people: People) -> None:
    ws = connect(server, "/ws/notes?subscribe-broadcast")
    with transaction.atomic():
        Note.objects.create(text="pending")
        assert_silent(ws)  # inside the transaction: nothing left yet
    assert json.loads(ws.recv())["fields"]["text"] == "pending"


def test_delete_publishes_after_commit(server: UwsgiServer, people: People) -> None:
    note = Note.objects.create(text="short-lived")
    ws = connect(server, "/ws/notes?subscribe-broadcast")
    pk = note.pk
    note.delete()
    message = json.loads(ws.recv())
    assert (message["action"], message["pk"]) == ("deleted", pk)


def test_signal_helper_publishes_models_you_do_not_own(server: UwsgiServer, people: People) -> None:
    disconnect = publish_model_changes(Ticket, facility="tickets", users=["alice"], fields=["title"])
    try:
        alice = connect(server, "/ws/tickets?subscribe-user", cookie=people.cookie("alice"))
        with pytest.raises(Rollback), transaction.atomic():
            Ticket.objects.create(title="rolled back")
            raise Rollback
        ticket = Ticket.objects.create(title="printer on fire")
        message = json.loads(alice.recv())
        assert message == {"model": "modelapp.ticket", "pk": ticket.pk, "action": "created",
                           "fields": {"title": "printer on fire"}}
    finally:
        disconnect()
    Ticket.objects.create(title="after disconnect")
    assert_silent(alice)


def test_publish_on_commit_for_any_message(server: UwsgiServer, people: People) -> None:
    ws = connect(server, "/ws/refresh?subscribe-broadcast")
    with pytest.raises(Rollback), transaction.atomic():
        publish_on_commit({"facility": "refresh", "broadcast": True}, "rolled back")
        raise Rollback
    with transaction.atomic():
        publish_on_commit({"facility": "refresh", "broadcast": True}, "committed")
    assert ws.recv() == "committed"
    assert_silent(ws)
