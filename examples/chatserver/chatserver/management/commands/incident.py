"""``manage.py incident``: change the incident board from a shell script or cron job.

``manage.py incident open "Checkout returns 502" --severity sev1`` or ``manage.py incident <pk> resolve``. The
command only saves the ``Incident``; the after-commit receiver publishes the board's rows and the incident's card
(``chatserver.incidents``) exactly as for a view or the Celery task, so every open page changes.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatserver.incident_views import NEXT_STATUS
from chatserver.models import Incident


class Command(BaseCommand):
    help = "Open an incident, or move one on (acknowledge, mitigate, resolve, reopen); open pages follow live."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("what", help="'open', or the number of an incident")
        parser.add_argument("detail", help="the title to open, or the action: " + ", ".join(NEXT_STATUS))
        parser.add_argument("--severity", default="sev3", choices=[value for value, _ in Incident.SEVERITIES])

    def handle(self, *args: Any, what: str, detail: str, severity: str, **options: Any) -> None:
        if what == "open":
            incident = Incident.objects.create(title=detail[:120], severity=severity)
        else:
            if detail not in NEXT_STATUS:
                raise CommandError(f"unknown action {detail!r} (one of {', '.join(NEXT_STATUS)})")
            try:
                incident = Incident.objects.get(pk=int(what))
            except (ValueError, Incident.DoesNotExist):
                raise CommandError(f"no incident {what!r}") from None
            incident.status = NEXT_STATUS[detail]
            incident.note = f"manage.py incident: {detail}"
            incident.save()
        self.stdout.write(f"{incident}: {incident.get_status_display()}")
