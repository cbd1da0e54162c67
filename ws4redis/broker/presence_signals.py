"""Online and offline transitions per facility, decided atomically in Redis, once for the whole deployment.

``ws4redis.broker.presence`` lists the sockets of a channel; this module answers a different question: is a *person* (a
user, or an anonymous session) connected to a facility anywhere, and when does that change? Each facility with
``WS4REDIS_PRESENCE`` keeps, under one Redis Cluster hash tag (``{prefix:}online:{<facility>}:...``):

- ``sockets``: a sorted set of ``"<socket id> <who>"`` scored by when the entry expires (``ttl`` after its last
  refresh); ``who`` is ``u:<username>`` or ``s:<session hash>``;
- ``who:<who>``: the same entries of one person (socket id -> expiry), so "has alice a socket" is one ``ZCOUNT``;
- ``online``: a hash of the people whose ``online`` signal was sent (who -> since);
- ``leaving``: a sorted set of people with no socket left, scored by when they go offline (the grace period).

Three scripts change them, each atomic, so two workers or two instances never both decide one transition: *connect*
(also the periodic refresh: idempotent) adds a socket and, when the person was not online, claims ``online``; it
cancels a pending offline (a reload, a reconnect to another worker). *disconnect* removes a socket and, when it was
the person's last, schedules the offline ``grace`` seconds later. *sweep*, run every ``WS4REDIS_PRESENCE_SWEEP``
seconds by whichever hub takes the turn (``sweeper``), moves the sockets whose entries expired (their worker died
without a word) to ``leaving`` at expiry + grace, and claims each due offline: the script removes the
person from ``online`` and returns them, so exactly one sweeper sends the signal. Times are Redis's own clock
(``TIME``), so the hosts' clocks need not agree. Signals are queued for ``ws4redis.broker.presence_dispatch``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import redis

from ws4redis import settings
from ws4redis.broker.audience import prefix_of
from ws4redis.broker.presence_dispatch import Transition, dispatcher
from ws4redis.broker.redis_batch import Batch, run

__all__ = [
    "OnlineTracker", "facility_keys", "online_tracker", "sweep", "sweep_interval", "sweep_turn", "sweeper", "who_of",
]

logger = logging.getLogger("ws4redis.presence_signals")  # its name before the move: logging configurations keep it

_SWEEP_BATCH = 500  # expired sockets and due offlines handled per script call (a script blocks Redis while it runs)

_NOW = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: sockets, who, online, leaving. ARGV: socket id, who, ttl. Returns 1 when this call claimed "online".
_CONNECT = _NOW + """
local expiry = now + tonumber(ARGV[3])
local added = redis.call('ZADD', KEYS[1], expiry, ARGV[1] .. ' ' .. ARGV[2])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
if added == 0 then return 0 end
redis.call('ZREM', KEYS[4], ARGV[2])
return redis.call('HSETNX', KEYS[3], ARGV[2], tostring(now))
"""

# KEYS: sockets, who, online, leaving. ARGV: socket id, who, grace. Returns 1 when this call claimed "offline"
# (only with no grace: otherwise a sweep claims it when the grace is over).
_DISCONNECT = _NOW + """
local removed = redis.call('ZREM', KEYS[1], ARGV[1] .. ' ' .. ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
if removed == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if tonumber(ARGV[3]) <= 0 then return redis.call('HDEL', KEYS[3], ARGV[2]) end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[2])
return 0
"""

# KEYS: sockets, online, leaving. ARGV: grace, batch, prefix of the "who" keys.
# Returns {more to do (0/1), facility empty (0/1), {who claimed offline...}}.
_SWEEP = _NOW + """
local grace = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
for i = 1, #gone, 2 do
  local member = gone[i]
  local who = string.sub(member, 18)
  local key = ARGV[3] .. who
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', key, string.sub(member, 1, 16))
  if redis.call('EXISTS', key) == 0 then redis.call('ZADD', KEYS[3], tonumber(gone[i + 1]) + grace, who) end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, batch)
local out = {}
for _, who in ipairs(due) do
  redis.call('ZREM', KEYS[3], who)
  if redis.call('EXISTS', ARGV[3] .. who) == 0 and redis.call('HDEL', KEYS[2], who) == 1 then
    out[#out + 1] = who
  end
end
local more = 0
if #gone >= 2 * batch or #due >= batch then more = 1 end
local empty = 0
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) == 0 then empty = 1 end
return {more, empty, out}
"""


def _head() -> str:
    return prefix_of(settings.get("WS4REDIS_PREFIX"))


def registry_key() -> str:
    """The set of facilities that have (or recently had) people online: what a sweeper walks."""
    return f"{_head()}online:facilities"


def facility_keys(facility: str) -> tuple[str, str, str, str]:
    """``(sockets, online, leaving, prefix of the per-person keys)`` of ``facility``, under one hash tag."""
    base = f"{_head()}online:{{{facility}}}:"
    return f"{base}sockets", f"{base}online", f"{base}leaving", f"{base}who:"


def who_of(user: str | None, session_key: str | None) -> str | None:
    """``u:<username>``, ``s:<truncated SHA-256 of the session key>``, or ``None`` (no user, no session: nobody
    to follow across sockets)."""
    if user:
        return f"u:{user}"
    if session_key:
        return f"s:{hashlib.sha256(session_key.encode()).hexdigest()[:16]}"
    return None


def config_of(facility: str) -> tuple[float, float] | None:
    """``(ttl, grace)`` of a facility with presence, else ``None``; ``"grace"`` in its entry overrides
    ``WS4REDIS_PRESENCE_GRACE``."""
    entry = settings.for_channel("WS4REDIS_PRESENCE", facility)
    if entry is None:
        return None
    grace = entry.get("grace", settings.get("WS4REDIS_PRESENCE_GRACE"))
    return float(entry.get("ttl", 30)), max(float(grace or 0), 0.0)


class OnlineTracker:
    """One socket's part in its person's online state, per presence-enabled facility; runs in its greenlet.

    Failures are logged, never raised: a Redis hiccup must not close a socket. A connect that failed is retried at
    the next refresh (the script is idempotent); a disconnect that failed leaves an entry that expires, and the sweep
    then treats the socket as a dead worker's (offline ``ttl`` + grace later).
    """

    __slots__ = ("_due", "_facilities", "_id", "_joined", "_send", "_who")

    def __init__(
        self, facilities: Iterable[tuple[str, float, float]], who: str,
        send: Callable[[Transition], None] | None = None,
    ) -> None:
        self._facilities = tuple(facilities)
        self._send = send  # None: the process's dispatcher greenlet (gevent); see online_tracker
        self._who = who
        self._id = uuid.uuid4().hex[:16]  # fixed length: the scripts split "<id> <who>" at character 17
        self._due = float("inf")
        self._joined = False

    def connect(self, client: redis.Redis) -> list[Transition]:
        """Record the socket; returns the ``online`` transitions this call claimed (their signals are queued)."""
        return self.emit(run(client, self.connect_batch()))

    def refresh(self, client: Callable[[], redis.Redis], now: float) -> None:
        """Extend the entries when due (``now``: ``time.monotonic()``); a comparison until then."""
        batch = self.refresh_batch(now)
        if batch is not None:
            self.emit(run(client(), batch))

    def disconnect(self, client: redis.Redis) -> list[Transition]:
        """Remove the socket; returns the ``offline`` transitions this call claimed (only without a grace period)."""
        batch = self.disconnect_batch()
        return [] if batch is None else self.emit(run(client, batch))

    # -- the same steps as ``Batch``es, for either client (``ws4redis.broker.redis_batch``): each returns the
    # -- transitions it claimed, whose signals the caller then sends with ``emit`` (never on an event loop: receivers bl
    def connect_batch(self) -> Batch[list[Transition]]:
        self._joined = True
        return self._write()

    def refresh_batch(self, now: float) -> Batch[list[Transition]] | None:
        return self._write() if self._joined and now >= self._due else None

    def disconnect_batch(self) -> Batch[list[Transition]] | None:
        if not self._joined:
            return None
        self._joined = False

        def failed(exc: Exception) -> list[Transition]:
            logger.warning("ws4redis presence: could not record a disconnect (%s); the entry expires on its own", exc)
            return []

        graces = [grace for _, _, grace in self._facilities]
        return Batch(lambda pipe: self._queue(pipe, _DISCONNECT, graces),
                     lambda replies: self._claimed(replies, online=False), failed)

    def _write(self) -> Batch[list[Transition]]:
        started = time.monotonic()

        def written(replies: list[Any]) -> list[Transition]:
            # Due a little before a third of the ttl: the connection's timer ticks every ttl / 3 from before this
            # write, and a due time just after a tick would skip it and leave a third of the ttl as the only margin.
            self._due = started + 0.9 * min(ttl for _, ttl, _ in self._facilities) / 3
            return self._claimed(replies, online=True)

        def failed(exc: Exception) -> list[Transition]:
            logger.warning("ws4redis presence: could not record a connection (%s); retrying at the next wake-up", exc)
            self._due = time.monotonic()
            return []

        ttls = [ttl for _, ttl, _ in self._facilities]
        return Batch(lambda pipe: self._queue(pipe, _CONNECT, ttls), written, failed)

    def _queue(self, pipe: Any, script: str, seconds: list[float]) -> None:
        """``script`` (connect or disconnect) once per facility in one round trip, with that facility's ``seconds``
        (ttl or grace); the facilities stay registered for the sweep (a pending offline too). One reply per facility,
        then the registry's."""
        for (facility, _, _), value in zip(self._facilities, seconds, strict=True):
            sockets, online, leaving, who = facility_keys(facility)
            pipe.execute_command(
                "EVAL", script, 4, sockets, who + self._who, online, leaving, self._id, self._who, value
            )
        pipe.sadd(registry_key(), *(facility for facility, _, _ in self._facilities))

    def _claimed(self, replies: list[Any], *, online: bool) -> list[Transition]:
        return [
            Transition(online=online, facility=facility, who=self._who)
            for (facility, _, _), result in zip(self._facilities, replies[:-1], strict=True)
            if int(result) == 1
        ]

    def emit(self, won: list[Transition]) -> list[Transition]:
        """Send the signals of the transitions a batch claimed (``send``, else the process's dispatcher greenlet);
        returns them."""
        send = self._send or dispatcher().emit
        for transition in won:
            send(transition)
        return won


def online_tracker(
    channels: Iterable[str], *, user: str | None, session_key: str | None,
    send: Callable[[Transition], None] | None = None,
) -> OnlineTracker | None:
    """The tracker of a socket listening on ``channels``; ``None`` (nothing kept) when none of their facilities has
    presence, or the socket has neither user nor session.

    ``send`` runs a claimed transition's signal; by default the process's dispatcher greenlet queues it, which only
    a running gevent loop ever serves. A driver without one (asyncio, whose tracker calls run in worker threads)
    passes ``presence_dispatch.send_now``, or its online and offline signals would never be sent."""
    who = who_of(user, session_key)
    if who is None:
        return None
    facilities: dict[str, tuple[str, float, float]] = {}
    for channel in channels:
        facility = channel.rpartition(":")[2]
        if facility not in facilities:
            config = config_of(facility)
            if config is not None:
                facilities[facility] = (facility, *config)
    return OnlineTracker(facilities.values(), who, send) if facilities else None


def sweep(client: redis.Redis | None = None, *, send: Callable[[Transition], None] | None = None) -> int:
    """Move dead workers' sockets to ``leaving`` and send each due offline that this call claims; returns how many.

    Every hub runs this periodically (``sweeper``); it may also be run from anywhere else (a management command, a
    Celery beat task): each transition is claimed by one caller only. ``send`` defaults to the process's dispatcher,
    a greenlet: a process without a running gevent loop passes ``send=presence_dispatch.send_now`` (as
    ``manage.py ws4redis_sweep`` does), or its signals would wait forever.
    """
    if client is None:
        from ws4redis.broker.redis_store import get_connection

        client = get_connection()
    send = send or dispatcher().emit
    facilities = sorted(raw.decode() for raw in client.smembers(registry_key()))  # type: ignore[union-attr]
    claimed = 0
    while facilities:
        pipe: Any = client.pipeline(transaction=False)
        for facility in facilities:
            config = config_of(facility)
            grace = config[1] if config is not None else max(float(settings.get("WS4REDIS_PRESENCE_GRACE") or 0), 0)
            sockets, online, leaving, who = facility_keys(facility)
            pipe.execute_command("EVAL", _SWEEP, 3, sockets, online, leaving, grace, _SWEEP_BATCH, who)
        again: list[str] = []
        empty: list[str] = []
        for facility, (more, is_empty, gone) in zip(facilities, pipe.execute(), strict=True):
            for raw in gone:
                send(Transition(online=False, facility=facility, who=raw.decode()))
                claimed += 1
            if int(more):
                again.append(facility)
            elif int(is_empty):
                empty.append(facility)
        if empty:
            _unregister(client, empty)
        facilities = again
    return claimed


def _unregister(client: redis.Redis, facilities: list[str]) -> None:
    """Forget facilities the sweep found empty, and take back any that a connect filled meanwhile.

    A connect writes its keys, then registers the facility; here the facility is removed, then its keys are looked
    at. In either order one of the two sees the other's write, so a facility with people in it stays registered
    (a script cannot do both: in Redis Cluster the registry and the facility live in different slots).
    """
    pipe: Any = client.pipeline(transaction=False)
    pipe.srem(registry_key(), *facilities)
    for facility in facilities:
        pipe.exists(*facility_keys(facility)[:3])
    refilled = [f for f, found in zip(facilities, pipe.execute()[1:], strict=True) if int(found)]
    if refilled:
        client.sadd(registry_key(), *refilled)


def sweeper() -> list[gevent.Greenlet]:
    """The hub's sweeping greenlet (started with the hub), or none when no facility has presence."""
    if not settings.get("WS4REDIS_PRESENCE"):
        return []
    return [gevent.spawn(_sweep_forever)]


def sweep_interval() -> float:
    """Seconds between a hub's sweeps (each wait jittered by 0.5x to 1.5x, so workers do not all try at once)."""
    return max(float(settings.get("WS4REDIS_PRESENCE_SWEEP")), 0.05)


def _sweep_forever() -> None:
    while True:
        # Jittered, so that the workers of a deployment do not all try at the same instant.
        gevent.sleep(random.uniform(0.5, 1.5) * sweep_interval())
        sweep_turn()


def sweep_turn(send: Callable[[Transition], None] | None = None) -> None:
    """One hub's turn at sweeping (blocking; never raises). The asyncio hub runs it in a thread with
    ``send=presence_dispatch.send_now``."""
    from ws4redis.broker.redis_store import get_connection

    try:
        # One sweep per interval for the whole deployment, whoever gets there first: the work does not grow with
        # the number of processes. Only a saving: every claim is atomic anyway, and a sweeper that dies holding
        # the turn loses it when it expires.
        client = get_connection()
        if client.set(f"{registry_key()}:turn", os.getpid(), nx=True, px=max(int(sweep_interval() * 1000), 1)):
            sweep(client, send=send)
    except (redis.RedisError, OSError) as exc:
        logger.warning("ws4redis presence: sweep failed (%s); retrying", exc)
    except Exception:  # the sweeper must outlive any failure, or offline signals stop for this process
        logger.exception("ws4redis presence: sweep failed")
