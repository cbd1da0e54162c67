"""Who is online in the chat, and an "unread messages" email for someone who is away when a direct message arrives.

Both come from ws4redis' presence (``WS4REDIS_PRESENCE`` on the ``chat`` facility): the ``user_online`` and
``user_offline`` signals are sent once per person for the whole site (not once per tab or per worker, and not on a
reload), so the receivers below simply tell every chat page; ``if_offline`` on the direct message's publish names
the addressee when they have no chat page open anywhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail

from ws4redis import signals
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import get_connection

__all__ = ["announce", "connect_receivers", "unread_notice"]

logger = logging.getLogger(__name__)

CHAT = "chat"
NOTICE_EVERY = 300  # seconds: at most one "unread messages" email per person in this window, however many messages
_NOTICE_KEY = "demo:unread-notice:{}"


def announce(sender: Any, *, user: str, facility: str, signal: Any, **kwargs: Any) -> None:
    """``user_online``/``user_offline`` receiver: every chat page marks ``user`` (runs in ws4redis' dispatcher)."""
    if facility != CHAT:
        return
    online = signal is signals.user_online
    RedisPublisher(facility=CHAT, broadcast=True).publish_message(
        json.dumps({"presence": {"user": user, "online": online}})
    )
    logger.info("chat: %s is %s", user, "online" if online else "away")


def unread_notice(sender: str) -> Callable[[str], None]:
    """The ``if_offline`` callback of a direct message from ``sender``: email each away addressee (the console
    email backend prints it), at most once per ``NOTICE_EVERY`` seconds per person."""

    def notify(username: str) -> None:
        if username == sender:
            return  # the sender wrote from somewhere without a chat page (a script): no notice to oneself
        if not get_connection().set(_NOTICE_KEY.format(username), sender, nx=True, ex=NOTICE_EVERY):
            return  # already told recently
        person = User.objects.filter(username=username).first()
        address = (person.email if person is not None else "") or f"{username}@example.com"
        send_mail(
            subject="You have unread messages",
            message=f"{sender} sent you a message on the chat while you were away.\n\nRead it: /chat/",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[address],
        )
        logger.info("chat: emailed an unread-messages notice to %s", username)

    return notify


def connect_receivers() -> None:
    for signal in (signals.user_online, signals.user_offline):
        signal.connect(announce, dispatch_uid=f"chatserver.presence.announce.{id(signal)}")
