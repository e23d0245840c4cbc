"""A real many-node Redis Cluster on loopback (``RedisClusterNodes``): ``size`` redis-server
primaries in cluster mode, the 16384 slots split between them, joined with CLUSTER MEET; with
the steps that move one slot between two nodes, so a test can make a client meet MOVED and ASK
(the "Redis cluster specification", "Live resharding")."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tollgate_common.redis.slots import key_slot
from tollgate_testkit.ports import free_port
from tollgate_testkit.redis_server import RedisServer, cluster_mode

SLOTS = 16384
B32 = "abcdefghijklmnopqrstuvwxyz234567"  # a key id's alphabet (apikeys.KEY_RE)


class ClusterNode(RedisServer):
    """One redis-server with cluster mode on and no slots yet, persisting (AOF) so a restart
    keeps its data; its nodes.conf (id, slots, peers) survives a restart too."""

    def __init__(self, workdir: Path, port: int | None = None, bus_port: int | None = None):
        self.bus_port = bus_port or free_port()
        conf = workdir / "nodes.conf"
        if bus_port is None:  # a new node, not a restart
            conf.unlink(missing_ok=True)
        super().__init__(
            workdir,
            port,
            appendonly=True,
            extra=(*cluster_mode(conf, self.bus_port), "--cluster-node-timeout", "2000"),
        )
        self.client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        self.id: str = self.cmd("CLUSTER", "MYID")

    def cmd(self, *args: Any) -> Any:
        """A command on this node (redis-py's execute_command is not annotated)."""
        return self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop with ``sig`` and start again on the same ports, with the same id and slots."""
        self.client.close()
        self.proc.kill(sig)
        self.stop()
        ClusterNode.__init__(self, self.workdir, self.port, self.bus_port)

    def info(self) -> dict[str, str]:
        text: Any = self.cmd("CLUSTER", "INFO")
        if isinstance(text, dict):  # redis-py may parse it already
            return {str(k): str(v) for k, v in text.items()}
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        super().stop()


class RedisClusterNodes:
    """``size`` primaries (no replicas), slots split evenly in node order. Stops only the
    processes it started (Proc: by PID)."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.nodes: list[ClusterNode] = []
        try:
            for i in range(size):
                self.nodes.append(ClusterNode(workdir / f"node{i}"))
            for i, node in enumerate(self.nodes):
                lo, hi = i * SLOTS // size, (i + 1) * SLOTS // size - 1
                node.cmd("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                first.cmd("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """A cluster URL on the first node (the seed: the clients learn the others)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says cluster_state:ok and knows every other and every slot's owner
        agrees (gossip spread the last change)."""
        deadline = time.monotonic() + timeout
        while not self._agreed():
            if time.monotonic() > deadline:
                states = [n.info().get("cluster_state") for n in self.nodes]
                raise RuntimeError(f"the cluster never settled: {states}")
            time.sleep(0.05)

    def _agreed(self) -> bool:
        maps = []
        for n in self.nodes:
            info = n.info()
            if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(
                len(self.nodes)
            ):
                return False
            maps.append(sorted((s[0], s[1], s[2][1]) for s in self._slots(n)))
        return all(m == maps[0] for m in maps)

    @staticmethod
    def _slots(node: ClusterNode) -> list[list[Any]]:
        reply: list[list[Any]] = node.cmd("CLUSTER", "SLOTS")
        return reply

    def key_ids_on_every_node(self, per_node: int = 2) -> list[str]:
        """API key ids (8 characters of a key id's alphabet, apikeys.KEY_RE) whose slot (their
        hash tag, ``{<id>}``) is on each node, ``per_node`` each, node by node."""
        found: dict[int, list[str]] = {n.port: [] for n in self.nodes}
        i = 0
        while any(len(v) < per_node for v in found.values()):
            key_id = "kid" + "".join(B32[i >> (5 * p) & 31] for p in range(5))
            owner = found[self.owner(key_slot(f"{{{key_id}}}")).port]
            if len(owner) < per_node:
                owner.append(key_id)
            i += 1
        return [k for ks in found.values() for k in ks]

    def owner(self, slot: int) -> ClusterNode:
        """The node that serves ``slot`` now (as the first node sees it)."""
        for start, end, primary, *_ in self._slots(self.nodes[0]):
            if int(start) <= slot <= int(end):
                port = int(primary[1])
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no node serves slot {slot}")

    def keyslot(self, key: str) -> int:
        """The slot of a key, by the server's own CLUSTER KEYSLOT."""
        return int(self.nodes[0].cmd("CLUSTER", "KEYSLOT", key))

    # Moving a slot, in the three steps of a live resharding.
    def begin_move(self, slot: int, dst: ClusterNode) -> ClusterNode:
        """The slot IMPORTING on ``dst``, MIGRATING on its owner (returned): from now on the
        owner answers ASK for a key it no longer holds."""
        src = self.owner(slot)
        dst.cmd("CLUSTER", "SETSLOT", slot, "IMPORTING", src.id)
        src.cmd("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id)
        return src

    def migrate_keys(
        self,
        slot: int,
        src: ClusterNode,
        dst: ClusterNode,
        *,
        batch: int = 100,
        between: Callable[[], None] | None = None,
    ) -> int:
        """Move the slot's keys from ``src`` to ``dst`` (MIGRATE), ``batch`` at a time, calling
        ``between`` after each batch; returns how many moved."""
        moved = 0
        while True:
            keys = src.cmd("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                return moved
            src.cmd("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            if between is not None:
                between()

    def finish_move(self, slot: int, dst: ClusterNode) -> None:
        """The slot is ``dst``'s, on every node (then every node agrees): the old owner answers
        MOVED from now on."""
        for node in [dst, *(n for n in self.nodes if n is not dst)]:
            node.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst.id)
        self.wait_ok()

    def move_slot(
        self, slot: int, dst: ClusterNode, *, batch: int = 100, pause: float = 0.0
    ) -> None:
        """The whole move, with ``pause`` seconds after each batch of keys."""
        src = self.begin_move(slot, dst)
        self.migrate_keys(slot, src, dst, batch=batch, between=lambda: time.sleep(pause))
        self.finish_move(slot, dst)

    def flushall(self) -> None:
        for node in self.nodes:
            node.client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
