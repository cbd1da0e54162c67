"""Live HTML of the incident board: every saved change of an incident re-renders two fragments, once each, and
publishes them after the transaction commits (never for a rolled-back change).

- the board's rows (``update`` of ``#incident-rows``) to the ``incidents`` facility, for every signed-in user;
- the incident's card (``update`` of ``#incident-card``) to its own signed stream ``incident-<pk>``.

Both fragments are the whole state of what they show, not a delta, so the kept message a page gets when it
(re)connects is enough to show the current state: nothing to replay, nothing to reload.
"""

from __future__ import annotations

from django.db.models.signals import post_save

from ws4redis import fragments

BOARD = "incidents"
KEEP_SECONDS = 24 * 3600  # how long the kept fragments are replayed to (re)connecting pages


def board_rows() -> str:
    from chatserver.models import Incident

    rows = Incident.objects.select_related("opened_by")[:50]
    return fragments.htmx_oob("update", target="incident-rows", template="chatserver/incidents/_rows.html",
                              context={"incidents": rows})


def incident_card(pk: int) -> str:
    from chatserver.models import Incident

    incident = Incident.objects.select_related("opened_by").get(pk=pk)
    return fragments.htmx_oob("update", target="incident-card", template="chatserver/incidents/_card.html",
                              context={"incident": incident})


def publish_change(sender: object, instance: object, using: str, **kwargs: object) -> None:
    """``post_save`` receiver: render at commit time (the committed rows), publish to the board and the incident."""
    pk = int(instance.pk)  # type: ignore[attr-defined]
    fragments.publish_on_commit(board_rows, facility=BOARD, broadcast=True, using=using, expire=KEEP_SECONDS)
    fragments.publish_on_commit(lambda: incident_card(pk), facility=f"incident-{pk}", broadcast=True, using=using,
                                expire=KEEP_SECONDS)


def connect() -> None:
    from chatserver.models import Incident

    post_save.connect(publish_change, sender=Incident, dispatch_uid="chatserver.incidents")
