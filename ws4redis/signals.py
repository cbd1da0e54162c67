"""Django signals for presence transitions: someone came online, or went offline, on a facility.

Each is sent once per transition for the whole deployment (every worker of every instance together): the transition
is decided atomically in Redis by ``ws4redis.broker.presence_signals``, and only the process that decided it sends the
signal. Receivers run in that process's signal dispatcher (never in the hub's reader), one at a time, in the order
the process decided the transitions; their exceptions are logged, never raised into ws4redis.

Keyword arguments (``sender`` is ``Presence``, the class below, so ``@receiver(user_online)`` needs no sender):

- ``user_online`` / ``user_offline``: ``user`` (the username), ``facility``.
- ``session_online`` / ``session_offline``: ``session`` (a truncated SHA-256 of the session key, never the key),
  ``facility``; sent for anonymous clients that have a session, on facilities whose policy lets them connect.

See ``docs/presence.md`` for what "online" means (the grace period, crashed workers).
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["Presence", "session_offline", "session_online", "user_offline", "user_online"]


class Presence:
    """The ``sender`` of every presence signal (a class, so that ``Signal.connect(sender=Presence)`` is stable)."""


user_online = Signal()
user_offline = Signal()
session_online = Signal()
session_offline = Signal()
