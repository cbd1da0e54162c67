"""Redis topologies for the scale-out tests: hubs seen in CLIENT LIST, Sentinel groups and a Redis Cluster.

Every server is Debian's ``redis-server`` on a free loopback port, started here and stopped by its own pid.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.servers import Process, free_port, redis_binary, wait_for_port

__all__ = ["ClusterNodes", "RedisNode", "SentinelGroup", "hub_pids", "wait_until"]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, *, what: str = "condition") -> None:
    """Poll a condition on another process's state (there is no event to await across processes)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


def hub_pids(client: redis.Redis) -> list[int]:
    """The worker pid of every ws4redis hub connected to this Redis, from CLIENT LIST (``ws4redis-hub:<host>:<pid>``).

    A pid twice would be a worker holding two pub/sub links.
    """
    return [
        int(str(entry["name"]).rsplit(":", 1)[1])
        for entry in client.client_list()
        if str(entry.get("name") or "").startswith("ws4redis-hub:")
    ]


class RedisNode(Process):
    """One redis-server (or sentinel) with extra configuration lines, on a free port."""

    def __init__(self, *args: str, port: int | None = None, sentinel_conf: str | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="ws4redis-topology-")
        common = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
                  "--appendonly", "no"]
        if sentinel_conf is not None:
            conf = Path(self.dir) / "sentinel.conf"
            conf.write_text(sentinel_conf)
            command = [redis_binary(), str(conf), "--sentinel", *common[:4], "--dir", self.dir]
        else:
            command = [redis_binary(), *common, *args]
        super().__init__(command)
        wait_for_port(self.port, proc=self.proc)

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)


class SentinelGroup:
    """A master, one replica and three sentinels watching them as ``service``."""

    def __init__(self, service: str = "mymaster") -> None:
        self.service = service
        self.master = RedisNode()
        self.replica = RedisNode("--replicaof", "127.0.0.1", str(self.master.port))
        conf = (
            f"sentinel monitor {service} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
            f"sentinel failover-timeout {service} 5000\n"
            f"sentinel parallel-syncs {service} 1\n"
        )
        self.sentinels = [RedisNode(sentinel_conf=conf) for _ in range(3)]
        self.nodes = [self.master, self.replica]
        wait_until(self._replica_synced, 15, what="replica in sync")
        # Every sentinel must know the replica (learned from the master's INFO) and its peers before a failover.
        wait_until(self._sentinels_ready, 15, what="sentinels ready")

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def _replica_synced(self) -> bool:
        client = self.replica.client()
        try:
            return client.info("replication").get("master_link_status") == "up"
        finally:
            client.close()

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                master = client.sentinel_master(self.service)
                if int(master.get("num-slaves", 0)) < 1 or int(master.get("num-other-sentinels", 0)) < 2:
                    return False
            finally:
                client.close()
        return True

    def master_port(self) -> int:
        client = self.sentinels[0].client(decode_responses=True)
        try:
            return int(client.execute_command("SENTINEL", "get-master-addr-by-name", self.service)[1])
        finally:
            client.close()

    def stop(self) -> None:
        for node in [*self.sentinels, *self.nodes]:
            node.stop()


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(20000, 50000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterNodes:
    """A Redis Cluster of ``masters`` masters with one replica each (``redis-cli --cluster create``)."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        import shutil
        import subprocess

        self.nodes = [
            RedisNode("--cluster-enabled", "yes", "--cluster-node-timeout", "1500",
                      "--cluster-config-file", "nodes.conf", port=cluster_port())
            for _ in range(masters * (1 + replicas))
        ]
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        wait_until(self._healthy, 30, what="cluster state ok")

    def _healthy(self) -> bool:
        for node in self.nodes:
            client = node.client(decode_responses=True)
            try:
                info = client.execute_command("CLUSTER", "INFO")
                if "cluster_state:ok" not in str(info):
                    return False
                # A replica that never synced would not be promoted (its data is "too old"): wait for the link.
                replication = client.info("replication")
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return False
            finally:
                client.close()
        return True

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.port) for n in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
