from __future__ import annotations

from django.db import models

from ws4redis.model_publishing import PublishOnSaveMixin


class Note(PublishOnSaveMixin, models.Model):
    """Publishes its saves and deletions to the 'notes' facility (broadcast) after commit."""

    ws4redis_facility = "notes"
    text = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)


class Ticket(models.Model):
    """An ordinary model: published through ``publish_model_changes`` (signals) in the tests."""

    title = models.CharField(max_length=100)
