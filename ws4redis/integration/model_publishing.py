"""Publishing model changes after the transaction commits (SwampDragon's self-publishing models, the ws4redis way).

Publishing from ``save()`` directly is a classic bug: the message leaves before the transaction commits, so a client
may fetch the row before it exists, and a rolled-back save announces a change that never happened. Everything here
goes through ``transaction.on_commit``: published once after the outermost transaction commits, never on rollback,
and at once in autocommit mode (outside any ``atomic`` block).

Three ways in, from the smallest::

    publish_on_commit({"facility": "orders", "broadcast": True}, "refresh")      # any message

    class Order(PublishOnSaveMixin, models.Model):                               # a model that publishes itself
        ws4redis_facility = "orders"
        ws4redis_audience = {"broadcast": True}

    publish_model_changes(Order, facility="orders", broadcast=True)              # signals, for models you don't own

A message is JSON: ``{"model": "app.order", "pk": 1, "action": "created"|"updated"|"deleted", "fields": {...}}``,
serialised at save time (the state that was saved, not whatever the instance holds at commit) with
``model_to_dict`` and ``DjangoJSONEncoder`` (dates, decimals, UUIDs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, router, transaction
from django.db.models.signals import post_delete, post_save
from django.forms.models import model_to_dict

from ws4redis.broker.publisher import RedisPublisher

__all__ = ["PublishOnSaveMixin", "publish_model_changes", "publish_on_commit", "serialise_instance"]

PublisherSpec = RedisPublisher | dict[str, Any]


def publish_on_commit(
    publisher: PublisherSpec, message: str | bytes, *, using: str | None = None, expire: int | None = None
) -> None:
    """Publish ``message`` once the current transaction of ``using`` commits; never if it rolls back.

    ``publisher`` is a ``RedisPublisher`` or its keyword arguments (then built at commit time, so no Redis work
    happens for a transaction that rolls back). Outside a transaction it publishes at once.
    """

    def send() -> None:
        target = RedisPublisher(**publisher) if isinstance(publisher, dict) else publisher
        target.publish_message(message, expire=expire)

    transaction.on_commit(send, using=using)


def serialise_instance(instance: models.Model, action: str, *, fields: Iterable[str] | None = None) -> str:
    """The JSON message for a change of ``instance`` (see the module docstring for its shape)."""
    return json.dumps(
        {
            "model": instance._meta.label_lower,
            "pk": instance.pk,
            "action": action,
            "fields": model_to_dict(instance, fields=list(fields) if fields is not None else None),
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
        ensure_ascii=False,
    )


class PublishOnSaveMixin(models.Model):
    """A model that publishes its own saves and deletions to ``ws4redis_facility`` after commit.

    ``ws4redis_audience`` is ``RedisPublisher``'s audience arguments (default ``{"broadcast": True}``);
    ``ws4redis_fields`` limits what is serialised (default every editable field) — mind what you broadcast.
    Override ``ws4redis_message(action)`` to send something else, returning ``None`` to send nothing.
    Note that ``QuerySet.update()`` and bulk operations do not call ``save()``, so they publish nothing.
    """

    ws4redis_facility: str = ""
    ws4redis_audience: dict[str, Any] = {"broadcast": True}  # read-only class configuration
    ws4redis_fields: tuple[str, ...] | None = None

    class Meta:
        abstract = True

    def ws4redis_message(self, action: str) -> str | bytes | None:
        return serialise_instance(self, action, fields=self.ws4redis_fields)

    def _ws4redis_publish(self, action: str, using: str | None) -> None:
        if not self.ws4redis_facility:
            raise ValueError(f"{type(self).__name__}.ws4redis_facility is not set")
        message = self.ws4redis_message(action)  # serialised now: the state that was saved
        if message is not None:
            spec = {"facility": self.ws4redis_facility, **self.ws4redis_audience}
            publish_on_commit(spec, message, using=using)

    def save(self, *args: Any, **kwargs: Any) -> None:
        creating = self._state.adding
        super().save(*args, **kwargs)
        self._ws4redis_publish("created" if creating else "updated", self._state.db)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        message = self.ws4redis_message("deleted")  # before delete() clears the primary key
        result = super().delete(*args, **kwargs)
        if message is not None:
            publish_on_commit({"facility": self.ws4redis_facility, **self.ws4redis_audience}, message, using=using)
        return result


def publish_model_changes(
    model: type[models.Model],
    *,
    facility: str,
    fields: Iterable[str] | None = None,
    message: Callable[[models.Model, str], str | bytes | None] | None = None,
    **audience: Any,
) -> Callable[[], None]:
    """Publish every save and deletion of ``model`` (any model, also one you do not own) after commit.

    ``audience`` are ``RedisPublisher`` arguments (``broadcast=True``, ``groups=[...]``); ``message(instance,
    action)`` replaces the default serialisation. Returns a function that disconnects the receivers again.
    """
    chosen = list(fields) if fields is not None else None
    make = message or (lambda instance, action: serialise_instance(instance, action, fields=chosen))
    spec = {"facility": facility, **audience}

    def saved(sender: Any, instance: models.Model, created: bool, using: str, raw: bool = False, **kw: Any) -> None:
        if raw:  # loaddata: fixtures are not changes anybody is watching
            return
        body = make(instance, "created" if created else "updated")
        if body is not None:
            publish_on_commit(spec, body, using=using)

    def deleted(sender: Any, instance: models.Model, using: str, **kw: Any) -> None:
        body = make(instance, "deleted")
        if body is not None:
            publish_on_commit(spec, body, using=using)

    uid = f"ws4redis:{model._meta.label_lower}:{facility}"
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=uid)

    def disconnect() -> None:
        post_save.disconnect(sender=model, dispatch_uid=uid)
        post_delete.disconnect(sender=model, dispatch_uid=uid)

    return disconnect
