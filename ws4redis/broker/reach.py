"""How many sockets a publish reached, summed over every process, within a bounded wait; and ``if_offline``.

PUBLISH's reply counts the processes (hubs) subscribed to a channel, not their sockets. So a counted publish sends,
right after the message and in the same MULTI (nothing can subscribe or unsubscribe in between), a *probe* on each
channel: ``PROBE_MARK`` + a reply key + its HMAC. Every hub that receives the message then receives the probe, never
hands it to a socket, and answers with the number of its sockets on that channel (``RPUSH`` on the reply key, from a
greenlet of its own, not from the reader). The publisher knows from the probes' PUBLISH replies how many answers to
expect, and waits for them at most ``timeout`` seconds.

The HMAC (``SECRET_KEY``) keeps a client from making the hubs write where it likes: a socket may publish any bytes,
and a probe that does not verify is dropped by every hub, counted and logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import redis
import redis.cluster

from ws4redis import metrics, settings
from ws4redis.broker.audience import prefix_of
from ws4redis.broker.redis_store import publish_pipeline

__all__ = ["PROBE_MARK", "Reach", "answer", "notify_offline", "offline_targets", "publish_counted"]

logger = logging.getLogger("ws4redis.reach")  # its name before the move: logging configurations keep it

#: Prefix of a pub/sub payload that is a reach probe, never a message.
PROBE_MARK = b"\x00\xffws4redis:reach:"
_KEY = re.compile(rb"[0-9a-f]{32}")
_ANSWER_TTL = 60  # seconds a reply list outlives a publisher that stopped waiting


@dataclasses.dataclass(frozen=True)
class Reach:
    """What a counted publish reached: ``sockets`` over the ``answered`` processes of ``expected``; ``complete``
    when every process answered within the wait."""

    sockets: int
    answered: int
    expected: int

    @property
    def complete(self) -> bool:
        return self.answered >= self.expected


def _reply_key(token: bytes) -> str:
    return f"{prefix_of(settings.get('WS4REDIS_PREFIX'))}reach:{token.decode()}"


def _signature(token: bytes) -> bytes:
    from django.conf import settings as django_settings

    key = hashlib.sha256(b"ws4redis.reach:" + str(django_settings.SECRET_KEY).encode()).digest()
    return hmac.new(key, token, hashlib.sha256).hexdigest()[:32].encode()


def probe(token: bytes) -> bytes:
    """The probe payload of ``token`` (32 hex digits)."""
    return PROBE_MARK + token + b" " + _signature(token)


def answer(data: bytes, sockets: int, *, run: Callable[..., Any] | None = None) -> None:
    """A hub received ``data``, a probe: answer with its ``sockets`` on that channel, away from the hub's reader:
    ``run(function, *args)`` starts it (a greenlet by default; the asyncio hub passes its loop's thread pool)."""
    token, _, signature = data[len(PROBE_MARK) :].partition(b" ")
    if not _KEY.fullmatch(token) or not hmac.compare_digest(signature, _signature(token)):
        metrics.DROPPED.labels("forged_probe").inc()
        logger.warning("ws4redis reach: dropped a probe that does not verify (published by a client?)")
        return
    (run or gevent.spawn)(_push, _reply_key(token), sockets)


def _push(key: str, sockets: int) -> None:
    from ws4redis.broker.redis_store import get_connection

    try:
        pipe = get_connection().pipeline(transaction=False)
        pipe.rpush(key, sockets)
        pipe.expire(key, _ANSWER_TTL)
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning("ws4redis reach: could not answer a probe (%s); that publisher counts without us", exc)


def publish_counted(
    connection: redis.Redis, channels: list[str], message: bytes, *, expire: int, timeout: float
) -> Reach:
    """Publish ``message`` to ``channels`` as ``RedisPublisher.publish_message`` does, then count the sockets that
    each subscribed process had on those channels when the message passed (see the module docstring)."""
    token = uuid.uuid4().hex.encode()
    sharded = isinstance(connection, redis.cluster.RedisCluster)
    # One MULTI where the channels share a server; a cluster's channels may live on several shards.
    pipe: Any = connection.pipeline(transaction=not sharded)
    steps = publish_pipeline(pipe, channels, message, expire)
    payload = probe(token)
    for channel in channels:
        if sharded:
            pipe.spublish(channel, payload)
        else:
            pipe.publish(channel, payload)
    results = pipe.execute()
    metrics.PUBLISHED_BY_SERVER.inc(len(channels))
    expected = sum(int(n) for n in results[sum(steps) :])
    key = _reply_key(token)
    sockets = answered = 0
    deadline = time.monotonic() + timeout
    try:
        while answered < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            popped = connection.blpop([key], timeout=max(left, 0.01))
            if popped is None:
                break
            sockets += int(popped[1])
            answered += 1
    finally:
        connection.delete(key)
    if answered < expected:
        logger.warning("ws4redis reach: %d of %d processes answered within %.2fs", answered, expected, timeout)
    return Reach(sockets=sockets, answered=answered, expected=expected)


def offline_targets(channels: Iterable[str]) -> dict[str, list[str]]:
    """``{facility: [usernames]}`` of the user channels among ``channels`` (names as ``audience.channel_names``), for
    ``if_offline``. Checked before anything is published: ``ValueError`` without a user audience, or for a facility
    without ``WS4REDIS_PRESENCE`` (nobody is tracked there, so everyone would look absent)."""
    head = prefix_of(settings.get("WS4REDIS_PREFIX"))
    found: dict[str, list[str]] = {}
    for channel in channels:
        rest = channel[len(head) :] if head and channel.startswith(head) else channel
        audience, _, tail = rest.partition(":")
        name, _, facility = tail.rpartition(":")
        if audience == "user" and name and facility:
            found.setdefault(facility, []).append(name)
    if not found:
        raise ValueError("if_offline needs a user audience (users=[...]) to know whom to look for")
    for facility in found:
        if settings.for_channel("WS4REDIS_PRESENCE", facility) is None:
            raise ValueError(f"facility {facility!r} has no WS4REDIS_PRESENCE entry: nobody is tracked there")
    return found


def notify_offline(
    targets: dict[str, list[str]], callback: Callable[[str], Any], *, connection: redis.Redis
) -> list[str]:
    """Call ``callback(username)`` once for each of ``targets`` (``offline_targets``) who has no socket on that
    facility now (one round trip per facility); returns those usernames."""
    from ws4redis.broker.presence_query import offline

    absent: list[str] = []
    for facility, names in targets.items():
        for name in offline(facility, names, connection=connection):
            if name not in absent:
                absent.append(name)
                callback(name)
    return absent
