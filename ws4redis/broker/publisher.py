"""``RedisPublisher``: publish from any Django code (a view, a Celery task, a management command).

No per-connection code is needed: a publish goes to Redis, every worker's hub receives it once, and each hub hands it
to the local sockets of that channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from ws4redis import settings
from ws4redis.broker import reach
from ws4redis.broker.audience import MEMBEROF_KEY, channel_names, self_session, self_user
from ws4redis.broker.redis_store import RedisStore, as_message, publish_pipeline

__all__ = ["RedisPublisher"]


class RedisPublisher(RedisStore):
    """Publishes to the channels of one facility for the audiences given at construction.

    ``RedisPublisher(facility='foo', broadcast=True, users=['ann', SELF], groups=[...], sessions=[...], request=req)``;
    ``SELF`` means the user, groups or session of ``request``. One ``publish_message`` to several audiences is one
    Redis round trip.
    """

    def __init__(self, connection: redis.Redis | None = None, **kwargs: Any) -> None:
        super().__init__(connection)
        self._publishers = set(self._get_message_channels(**kwargs))

    @property
    def channels(self) -> list[str]:
        """The channel names this publisher publishes on, sorted."""
        return sorted(self._publishers)

    def publish_message(
        self, message: str | bytes | None, expire: int | None = None, *, if_offline: Callable[[str], Any] | None = None
    ) -> int:
        """As ``RedisStore.publish_message``; then ``if_offline(username)`` is called once for each user of this
        publisher's user audience who has no socket on the facility (``WS4REDIS_PRESENCE``;
        ``ws4redis.broker.reach``)."""
        targets = reach.offline_targets(self._publishers) if if_offline is not None else None  # may refuse first
        count = super().publish_message(message, expire)
        if targets is not None and if_offline is not None and message is not None:
            reach.notify_offline(targets, if_offline, connection=self._connection)
        return count

    def publish_counted(
        self, message: str | bytes, expire: int | None = None, *, timeout: float = 1.0
    ) -> reach.Reach:
        """Publish as ``publish_message`` and count the sockets it reached over every process, waiting at most
        ``timeout`` seconds for their answers (``ws4redis.broker.reach``)."""
        wrapped = as_message(message)
        if wrapped is None or not self._publishers:
            return reach.Reach(sockets=0, answered=0, expected=0)
        expire = self._expire if expire is None else int(expire)
        return reach.publish_counted(
            self._connection, list(self._publishers), bytes(wrapped), expire=expire, timeout=timeout
        )

    def fetch_message(self, request: Any, facility: str, audience: str = "any") -> bytes | None:
        """The kept last message of ``facility`` for ``request``: session, then user, then group, then broadcast.

        ``audience`` restricts the lookup to one of ``session``, ``user``, ``group``, ``broadcast``.
        """
        prefix = settings.get("WS4REDIS_PREFIX")
        candidates: list[str] = []
        if audience in ("session", "any"):
            candidates += channel_names(prefix=prefix, facility=facility, sessions=self_session(request))
        if audience in ("user", "any"):
            candidates += channel_names(prefix=prefix, facility=facility, users=self_user(request))
        if audience in ("group", "any") and self_user(request):
            session = getattr(request, "session", None)
            groups = list(session.get(MEMBEROF_KEY, [])) if session is not None else []
            candidates += channel_names(prefix=prefix, facility=facility, groups=groups)
        if audience in ("broadcast", "any"):
            candidates += channel_names(prefix=prefix, facility=facility, broadcast=True)
        if not candidates:
            return None
        values: list[bytes | None] = self._connection.mget(candidates)  # type: ignore[assignment]
        for value in values:
            if value:
                return value
        return None

    def pipeline_publish_message(
        self, message: str | bytes, expire: int | None = None, transaction: bool = True, *, pipeline: Any = None
    ) -> Any:
        """Publish ``message`` to every channel of this publisher through one pipeline, a ``MULTI``/``EXEC``
        transaction unless ``transaction`` is false: the signature of the original's last code.

        Returns how many subscribed processes received it, summed over the channels, as ``publish_message`` does.
        With ``pipeline`` (a redis-py pipeline of the caller's, keyword only) the publish is only queued on it, to be
        executed by the caller with its other commands, and that pipeline is returned.
        """
        wrapped = as_message(message)
        if pipeline is not None:
            if wrapped is not None:
                expire = self._expire if expire is None else int(expire)
                publish_pipeline(pipeline, sorted(self._publishers), bytes(wrapped), expire)
            return pipeline
        channels = sorted(self._publishers)
        if wrapped is None or not channels:
            return 0
        expire = self._expire if expire is None else int(expire)
        return self._publish_through(self._connection.pipeline(transaction=transaction), channels, wrapped, expire)
