"""The incident board's data: one model, changed by views and by a Celery task; each change publishes live HTML."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Incident(models.Model):
    """An operations incident. ``status`` moves open -> investigating -> mitigated -> resolved."""

    STATUSES = [
        ("open", "Open"),
        ("investigating", "Investigating"),
        ("mitigated", "Mitigated"),
        ("resolved", "Resolved"),
    ]
    SEVERITIES = [("sev1", "SEV-1"), ("sev2", "SEV-2"), ("sev3", "SEV-3")]

    title = models.CharField(max_length=120)
    severity = models.CharField(max_length=8, choices=SEVERITIES, default="sev3")
    status = models.CharField(max_length=16, choices=STATUSES, default="open")
    note = models.CharField(max_length=200, blank=True)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def facility(self) -> str:
        """The incident's own signed stream (``WS4REDIS_SIGNED_STREAMS`` covers ``incident-*``)."""
        return f"incident-{self.pk}"
