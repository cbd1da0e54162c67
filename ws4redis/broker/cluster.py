"""Redis Cluster: sharded pub/sub (Redis 7 ``SSUBSCRIBE``/``SPUBLISH``) behind the pub/sub interface the hub reads.

Classic ``PUBLISH`` in a cluster is broadcast over the cluster bus to every node, so every node pays for every
message. Sharded pub/sub keeps a channel on the shard that owns its slot: the publisher ``SPUBLISH``es to that shard
only, and a hub ``SSUBSCRIBE``s each channel on the shard owning it. A hub therefore holds one pub/sub link per shard
(primary) it has channels on, named like its single link elsewhere (``ws4redis-hub:<host>:<pid>``).

``ShardedPubSub`` gives the hub what it reads from redis-py's ``PubSub``: ``subscribe``, ``unsubscribe``,
``parse_response(block=True)``, ``handle_message``, ``ping``, ``close``. One greenlet per shard link reads and
queues the replies (``smessage`` as ``message``, ``ssubscribe`` as ``subscribe``); the first failure of any link
is raised to the hub, which reconnects and resubscribes everything against the cluster's current topology, the same
path as a lost link to a single Redis. The control channel (revocations) stays classic pub/sub on one node: it is
published with ``PUBLISH``, which the cluster delivers to every node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gevent
import gevent.queue
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

__all__ = ["ShardedPubSub", "cluster_client", "is_cluster", "pubsub_for"]


class Ws4RedisCluster(RedisCluster):
    """``RedisCluster`` whose ``mget`` reads keys of several slots (one request per shard, not atomic).

    The subscriber reads the kept messages of a socket's channels (broadcast, user, group, session: as many slots)
    with one ``mget``; each kept message is independent, so per-shard reads lose nothing.
    """

    def mget(self, keys: Any, *args: Any) -> Any:
        return self.mget_nonatomic(keys, *args)


def cluster_client(kwargs: dict[str, Any]) -> RedisCluster:
    """A ``RedisCluster`` from normalised connection kwargs holding ``cluster_nodes`` (removed from ``kwargs``)."""
    nodes = [ClusterNode(str(host), int(port)) for host, port in kwargs.pop("cluster_nodes")]  # type: ignore[no-untyped-call]
    for key in ("host", "port", "db", "unix_socket_path", "retry_on_error"):
        kwargs.pop(key, None)  # a cluster has database 0 only; its retries are its own
    kwargs.setdefault("socket_timeout", None)
    return Ws4RedisCluster(startup_nodes=nodes, **kwargs)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def pubsub_for(client: Any, *, classic: Iterable[str] = ()) -> Any:
    """The hub's pub/sub object: redis-py's own for one Redis, ``ShardedPubSub`` for a cluster."""
    if is_cluster(client):
        return ShardedPubSub(client, classic=classic)
    return client.pubsub()


def _by_slot(channels: Iterable[str]) -> list[list[str]]:
    grouped: dict[int, list[str]] = {}
    for channel in channels:
        grouped.setdefault(key_slot(channel.encode()), []).append(channel)
    return list(grouped.values())


class ShardedPubSub:
    """Sharded subscriptions over one pub/sub link per shard, read as one stream of replies."""

    def __init__(self, cluster: RedisCluster, *, classic: Iterable[str] = ()) -> None:
        self._cluster = cluster
        self._classic = set(classic)
        self._links: dict[str, Any] = {}  # node name -> redis-py PubSub on that primary
        self._readers: list[gevent.Greenlet] = []
        self._reading: set[str] = set()
        self._replies: gevent.queue.Queue[Any] = gevent.queue.Queue()

    # -- the PubSub interface the hub uses ---------------------------------------------------------------------
    def subscribe(self, *channels: str) -> None:
        for node, names in self._by_node(channels).items():
            link = self._link(node)
            classic = [c for c in names if c in self._classic]
            if classic:
                link.subscribe(*classic)
            for same_slot in _by_slot(c for c in names if c not in self._classic):
                link.ssubscribe(*same_slot)  # one SSUBSCRIBE may only name channels of one slot
            if node.name not in self._reading:  # its connection exists once the first command went out
                self._reading.add(node.name)
                self._readers.append(gevent.spawn(self._read, link))

    def unsubscribe(self, *channels: str) -> None:
        for node, names in self._by_node(channels).items():
            link = self._links.get(node.name)
            if link is not None:
                for same_slot in _by_slot(names):
                    link.sunsubscribe(*same_slot)

    def parse_response(self, block: bool = True) -> Any:
        reply = self._replies.get(block=block)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def handle_message(self, response: Any, ignore_subscribe_messages: bool = False) -> dict[str, Any] | None:
        kind = response[0]
        if isinstance(response, (list, tuple)) and kind in (b"subscribe", b"ssubscribe"):
            return {"type": "subscribe", "channel": response[1], "data": response[2], "pattern": None}
        if isinstance(response, (list, tuple)) and kind in (b"unsubscribe", b"sunsubscribe"):
            return {"type": "unsubscribe", "channel": response[1], "data": response[2], "pattern": None}
        return {"type": "pong", "channel": None, "data": response, "pattern": None}

    def ping(self) -> None:
        for link in list(self._links.values()):
            link.ping()

    @property
    def connection(self) -> Any:
        """One link's connection (the hub's keep-alive cuts it when Redis goes silent; any link failing resets all)."""
        for link in self._links.values():
            return link.connection
        return None

    def close(self) -> None:
        gevent.killall(self._readers, block=False)
        for link in self._links.values():
            try:
                link.close()
            except (redis.RedisError, OSError):
                pass
        self._links.clear()

    # -- the shards ----------------------------------------------------------------------------------------------
    def _by_node(self, channels: Iterable[str]) -> dict[Any, list[str]]:
        grouped: dict[str, tuple[Any, list[str]]] = {}
        for channel in channels:
            if channel in self._classic:
                node = self._cluster.get_default_node()  # type: ignore[no-untyped-call]
            else:
                # The primary owning the channel's slot.
                node = self._cluster.get_node_from_key(channel)  # type: ignore[no-untyped-call]
            grouped.setdefault(node.name, (node, []))[1].append(channel)
        return {node: names for node, names in grouped.values()}

    def _link(self, node: Any) -> Any:
        link = self._links.get(node.name)
        if link is None:
            client = node.redis_connection or self._cluster.get_redis_connection(node)
            link = self._links[node.name] = client.pubsub()
            # redis-py reconnects a failed link and resubscribes it before raising (the node clients' retries handle
            # ConnectionError): refused, so no link under the hub's name holds channels that nobody reads.
            link.on_connect = self._refuse_reconnect
        return link

    def _refuse_reconnect(self, connection: Any) -> None:
        raise redis.ConnectionError("the hub's pub/sub links are reconnected by the hub only")

    def _read(self, link: Any) -> None:
        try:
            while True:
                response = link.parse_response(block=True)
                if response is None:
                    continue
                if isinstance(response, list) and response[0] == b"smessage":
                    response = [b"message", response[1], response[2]]
                self._replies.put(response)
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # handed to the hub's reader, which reconnects
            self._replies.put(exc if isinstance(exc, Exception) else redis.ConnectionError(str(exc)))
