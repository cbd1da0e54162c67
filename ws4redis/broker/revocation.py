"""Live revocation: logging out, deleting a session, deactivating a user or changing their password closes the
matching open websockets.

Authorisation happens at the handshake; without this, a socket opened before a logout would keep receiving that
user's messages. The Django process that sees the change publishes a control message on
``{prefix:}ws4redis:control``; every hub of every worker and instance receives it and closes its matching sockets
(close code 4003, or a ``ws4redis.v2`` "revoked" message where the transport cannot send a code).

A password change is a logout of every session, as Django treats it (the session auth hash no longer matches, so
the other sessions are logged out at their next request): the user's open sockets are closed once the change is
committed. The session that made the change keeps working through ``update_session_auth_hash``, which gives it a
new session key; new sockets opened with it are not affected.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.contrib.auth.signals import user_logged_out

from ws4redis import settings
from ws4redis.broker.audience import prefix_of

__all__ = ["connect_receivers", "control_channel", "drain", "instance_name", "parse_control", "revoke"]

logger = logging.getLogger("ws4redis.revocation")  # its name before the move: logging configurations keep it


def control_channel() -> str:
    """The channel every hub listens to for control messages."""
    return f"{prefix_of(settings.get('WS4REDIS_PREFIX'))}ws4redis:control"


def revoke(*, user: str | None = None, session: str | None = None) -> None:
    """Close every open websocket of ``user`` (all its sessions) or of one ``session``, on every worker."""
    if user is None and session is None:
        return
    # Imported here, not at the top: this module is imported by the app's ready(), and redis-py must not be loaded
    # before the gevent server entry point has monkey-patched (ws4redis.servers.gevent_server.patch).
    from ws4redis.broker.redis_store import get_connection

    message = json.dumps({"type": "revoke", "user": user, "session": session})
    get_connection().publish(control_channel(), message)


def drain(*, window: float, instance: str | None = None) -> None:
    """Tell every hub (or those of ``instance``) to close its sockets with 1001 and a jittered reconnect delay.

    The way to reload uWSGI without a reconnect storm: uWSGI's graceful reload gives a worker's running requests no
    signal, so ws4redis is told through Redis first (``manage.py ws4redis_drain``), then the reload proceeds.
    """
    from ws4redis.broker.redis_store import get_connection

    message = json.dumps({"type": "drain", "window": float(window), "instance": instance})
    get_connection().publish(control_channel(), message)


def instance_name() -> str:
    """This instance's name for targeted drains: ``WS4REDIS_INSTANCE``, else the host name."""
    import socket

    return str(settings.get("WS4REDIS_INSTANCE") or socket.gethostname())


def parse_control(data: bytes) -> dict[str, Any] | None:
    """A control message as a dict, or ``None`` for anything malformed (logged, never raised into the hub)."""
    try:
        message = json.loads(data)
    except ValueError:
        logger.warning("ws4redis: ignored a malformed control message")
        return None
    return message if isinstance(message, dict) else None


def _on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) if session is not None else None
    if key:
        revoke(session=key)


def _on_session_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    revoke(session=instance.session_key)


def _on_user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Deactivated, or a new password: every socket of the user goes.

    ``AbstractBaseUser.set_password`` keeps the raw password in ``_password`` until ``save()`` has sent
    ``post_save``, which is how Django itself knows the password changed (``password_validation.password_changed``)
    without a query: the same test here costs nothing on the user saves that change no password.
    """
    if getattr(instance, "is_active", True) is False:
        revoke(user=str(instance.get_username()))
    elif getattr(instance, "_password", None) is not None:
        from django.db import transaction

        name = str(instance.get_username())
        # After the commit: a rolled back change must not log anybody out, and a socket reconnecting at once must
        # find the new password in force. Without a transaction on_commit runs at once.
        transaction.on_commit(lambda: revoke(user=name), using=kwargs.get("using"))


def connect_receivers() -> None:
    """Called once from the app's ``ready()``."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete, post_save

    user_logged_out.connect(_on_logout, dispatch_uid="ws4redis.revoke_on_logout")
    post_save.connect(_on_user_saved, sender=get_user_model(), dispatch_uid="ws4redis.revoke_on_deactivate")
    try:
        from django.contrib.sessions.models import Session
    except (ImportError, RuntimeError):  # sessions app not installed
        return
    post_delete.connect(_on_session_deleted, sender=Session, dispatch_uid="ws4redis.revoke_on_session_delete")
