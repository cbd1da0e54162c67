"""The asyncio hub's pub/sub links: redis.asyncio connections that only the hub connects, one for a single Redis
(or the master a Sentinel names), one per shard of a Redis Cluster (sharded pub/sub, ``SSUBSCRIBE``).

Why raw connections and not redis-py's ``PubSub``: a ``PubSub`` reconnects a failed link and resubscribes every
channel by itself (its retry and on-connect hooks), and a subscribed link that nobody reads loses what is published
on it while the hub believes it is resubscribed (the defect the gevent hub had to refuse,
``ws4redis.runtime.gevent.hub``). Here a
link connects once; when it fails the hub learns of it and builds the next link itself, asking the Sentinels or the
cluster where to go at that moment.

Each link has one reader task and one writer task. Commands go through an ordered outbox that only the writer
empties, so ``SUBSCRIBE`` and ``UNSUBSCRIBE`` of one channel reach Redis in the order the hub decided them, and a
``detach`` needs no ``await``. The first failure of any link of a connection attempt ends them all (``Links.serve``
raises); the hub then reconnects everything against the current topology, the same path for every topology.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis
import redis.asyncio.connection as aioconnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from ws4redis.broker.redis_store import _sentinel, redis_kwargs

__all__ = ["Link", "Links", "open_links"]

logger = logging.getLogger("ws4redis.runtime.redis_links")  # its name before the move: logging configurations keep it

_SUBSCRIBE_CHUNK = 500  # channels per SUBSCRIBE command when (re)subscribing many at once
_ROUTING = ("cluster_nodes", "sentinels", "service_name", "sentinel_kwargs")

Reply = Callable[[Any], None]


def _connection_class(kwargs: dict[str, Any]) -> type[aioconnection.AbstractConnection]:
    if kwargs.pop("ssl", False) or kwargs.pop("connection_class", None) is not None:  # Sentinel + TLS sets a class
        return aioconnection.SSLConnection
    if "unix_socket_path" in kwargs:
        kwargs["path"] = kwargs.pop("unix_socket_path")
        return aioconnection.UnixDomainSocketConnection
    return aioconnection.Connection


def _accepted(cls: type[Any]) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= set(inspect.signature(init).parameters)
    return names - {"self", "args", "kwargs"}


def link_kwargs(base: dict[str, Any], **where: Any) -> tuple[type[aioconnection.AbstractConnection], dict[str, Any]]:
    """The connection class and keyword arguments of one pub/sub link, from ws4redis' normalised connection kwargs.

    The hub's own rules win over the setting: RESP2 replies, raw bytes, no read timeout (a quiet channel is no
    dead link: the keep-alive PING tells), no health check (its PING would read replies the reader is waiting for),
    no retry of redis-py's (reconnecting is the hub's job).
    """
    kwargs = {key: value for key, value in base.items() if key not in _ROUTING}
    if "host" in where:
        kwargs.pop("unix_socket_path", None)
    kwargs.update(where)
    cls = _connection_class(kwargs)
    kwargs.update(
        socket_timeout=None, health_check_interval=0, decode_responses=False, protocol=2,
        retry=Retry(NoBackoff(), 0), retry_on_error=[], retry_on_timeout=False,
    )
    kwargs.setdefault("socket_connect_timeout", 5)
    if cls is not aioconnection.UnixDomainSocketConnection:
        kwargs["socket_keepalive"] = True
    accepted = _accepted(cls)
    dropped = sorted(key for key in kwargs if key not in accepted)
    if dropped:
        logger.debug("ws4redis asyncio hub: connection arguments a pub/sub link does not take: %s", dropped)
    return cls, {key: value for key, value in kwargs.items() if key in accepted}


class Link:
    """One pub/sub connection to one Redis server."""

    def __init__(self, name: str, connection: aioconnection.AbstractConnection, on_reply: Reply) -> None:
        self.name = name
        self._connection = connection
        self._on_reply = on_reply
        self._outbox: list[list[bytes]] = []
        self._wake = asyncio.Event()
        self._opening = False
        # redis-py calls this on every connect of the connection; only the hub's own ``open`` may connect it.
        connection.register_connect_callback(self._refuse_reconnect)  # type: ignore[no-untyped-call]

    async def open(self) -> None:
        self._opening = True
        try:
            await self._connection.connect()  # type: ignore[no-untyped-call]
        finally:
            self._opening = False

    def _refuse_reconnect(self, connection: Any) -> None:
        if not self._opening:
            raise redis.ConnectionError("the hub's pub/sub link is reconnected by the hub only")

    def send(self, *args: str | bytes) -> None:
        """Queue one command; written in order by the writer task."""
        self._outbox.append(self._connection.pack_command(*args))
        self._wake.set()

    async def write(self) -> None:
        connection = self._connection
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                if not connection.is_connected:  # never let redis-py connect it again behind the hub's back
                    raise redis.ConnectionError("the hub's pub/sub link is closed")
                # Everything queued so far in one write (a burst of new sockets is a burst of SUBSCRIBEs), in order.
                batch, self._outbox = self._outbox, []
                await connection.send_packed_command([part for command in batch for part in command],
                                                     check_health=False)

    async def read(self) -> None:
        connection = self._connection
        while True:
            if not connection.is_connected:
                raise redis.ConnectionError("the hub's pub/sub link is closed")
            self._on_reply(await connection.read_response())

    async def aclose(self) -> None:
        try:
            await self._connection.disconnect(nowait=True)
        except (redis.RedisError, OSError):
            pass


class Links:
    """Every link of one connection attempt, and where each channel goes."""

    def __init__(self, links: dict[str, Link], route: Callable[[str], str], classic: str, *, sharded: bool) -> None:
        self._links = links
        self._route = route  # channel -> name of the link that carries it
        self._classic = classic  # the control channel: classic pub/sub even in a cluster (PUBLISH reaches every node)
        self.sharded = sharded
        self._tasks: list[asyncio.Task[None]] = []

    def subscribe(self, channels: Iterable[str]) -> None:
        self._command("SUBSCRIBE", channels)

    def unsubscribe(self, channels: Iterable[str]) -> None:
        self._command("UNSUBSCRIBE", channels)

    def ping(self) -> None:
        for link in self._links.values():
            link.send("PING")

    def cut(self) -> None:
        """End every link now (the keep-alive found one dead, or a channel has no link): ``serve`` raises."""
        for task in self._tasks:
            task.cancel()

    def _command(self, name: str, channels: Iterable[str]) -> None:
        grouped: dict[tuple[str, int], list[str]] = {}
        for channel in channels:
            if channel == self._classic or not self.sharded:
                key = (self._route(channel), -1)
            else:  # one SSUBSCRIBE may only name channels of one slot
                key = (self._route(channel), key_slot(channel.encode()))
            grouped.setdefault(key, []).append(channel)
        for (node, slot), names in grouped.items():
            link = self._links.get(node)
            if link is None:  # the topology changed since the links were made: start again from the cluster
                raise redis.ConnectionError(f"no pub/sub link to {node}, which now owns a channel")
            command = name if slot < 0 else "S" + name
            for start in range(0, len(names), _SUBSCRIBE_CHUNK):
                link.send(command, *names[start : start + _SUBSCRIBE_CHUNK])

    async def serve(self) -> None:
        """Read and write every link until one fails; raises that failure (never returns otherwise)."""
        self._tasks = [
            asyncio.ensure_future(job)
            for link in self._links.values()
            for job in (link.read(), link.write())
        ]
        try:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
            raise redis.ConnectionError("the hub's pub/sub link was cut")
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(link.aclose() for link in self._links.values()))


async def open_links(*, client_name: str, control_channel: str, on_reply: Reply) -> Links:
    """Connect the hub's links where the setting says Redis is now (asking the Sentinels or the cluster)."""
    base = redis_kwargs()
    base["client_name"] = client_name  # named, so CLIENT LIST shows which process holds which link
    links: dict[str, Link] = {}
    try:
        if "cluster_nodes" in base:
            route, nodes = await asyncio.to_thread(_cluster_topology, dict(base), control_channel)
            for name, (host, port) in nodes.items():
                cls, kwargs = link_kwargs(base, host=host, port=port, db=0)
                links[name] = Link(name, cls(**kwargs), on_reply)
            await asyncio.gather(*(link.open() for link in links.values()))
            return Links(links, route, control_channel, sharded=True)
        where: dict[str, Any] = {}
        if "sentinels" in base:
            sentinel = _sentinel(dict(base))
            assert sentinel is not None
            host, port = await asyncio.to_thread(sentinel[0].discover_master, sentinel[1])
            where = {"host": host, "port": port}
            for kept in sentinel[0].sentinels:
                kept.close()
        cls, kwargs = link_kwargs(base, **where)
        link = links["redis"] = Link("redis", cls(**kwargs), on_reply)
        await link.open()
        return Links(links, lambda channel: "redis", control_channel, sharded=False)
    except BaseException:
        await asyncio.gather(*(link.aclose() for link in links.values()))
        raise


def _cluster_topology(kwargs: dict[str, Any], control: str) -> tuple[Callable[[str], str], dict[str, tuple[str, int]]]:
    """The cluster's primaries now, and a router of channels to them (blocking: runs in a thread).

    ``ws4redis.broker.cluster.cluster_client`` reads the setting as the publishers do; its slot table is only read here.
    """
    from ws4redis.broker.cluster import cluster_client

    kwargs.pop("client_name", None)
    client = cluster_client(kwargs)
    try:
        default = client.get_default_node()  # type: ignore[no-untyped-call]
        nodes: dict[str, tuple[str, int]] = {default.name: (default.host, int(default.port))}
        for node in client.get_primaries():  # type: ignore[no-untyped-call]
            nodes[node.name] = (node.host, int(node.port))
        owners = {
            slot: holders[0].name for slot, holders in client.nodes_manager.slots_cache.items() if holders
        }
    finally:
        client.close()

    def route(channel: str) -> str:
        if channel == control:
            return str(default.name)
        return owners.get(key_slot(channel.encode()), "")

    return route, nodes
