"""``LeanCluster``: the lean client (resp.py) on a many-node Redis Cluster (issue 13).

One ``LeanRedis`` (one pipelined connection) per node; each command goes to the primary of its
key's slot (slots.py), from a slot map read with ``CLUSTER SLOTS`` on the first command. A
redirection is followed, bounded (``MAX_REDIRECTS``), since the command did not run:

- MOVED: the slot has a new owner; the map takes it at once and is read again in the
  background (a resharding moves more than one slot), the command goes to the new owner;
- ASK: the slot is being moved and this key is already on the importing node: ``ASKING`` and
  the command there, once (the map does not change);
- TRYAGAIN: a script's keys are split between the two nodes mid-move; again shortly.

A node that cannot be reached (``NotSent``: nothing left this client) makes the map be read
again and the command is sent once more; any later failure (a timeout, a connection lost with
the command on it) is the caller's, as on one server: the command may have run.

``SCRIPT LOAD`` goes to every primary, so ``LuaScript`` works unchanged: a node that forgot the
script (a restart, a failover to a replica that never loaded it) answers NOSCRIPT and the script
is loaded everywhere again. A command without a key (PING) goes to the first primary.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.exceptions import ResponseError

from tollgate_common.redis.resp import LeanCommands, LeanRedis, NotSent
from tollgate_common.redis.slots import Address, command_key, key_slot, redirect, slot_owners
from tollgate_common.redis.url import RedisTarget, parse_redis_url

MAX_REDIRECTS = 16
TRYAGAIN_SECONDS = 0.02  # times the attempt: about 2.7 s over MAX_REDIRECTS at most


class LeanCluster(LeanCommands):
    """The lean client's commands (``execute``, ``evalsha``, ``script_load``, ``get``, ``set``)
    on a Redis Cluster named by one seed node. ``moved``, ``asked``, ``retried``: redirections
    followed so far (MOVED, ASK, TRYAGAIN)."""

    def __init__(
        self, url: str | RedisTarget, connect_timeout: float = 1.0, timeout: float = 2.0
    ) -> None:
        self.target = url if isinstance(url, RedisTarget) else parse_redis_url(url)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._seed: Address = (self.target.host, self.target.port)
        self._nodes: dict[Address, LeanRedis] = {}
        self._slots: list[LeanRedis] | None = None  # read on the first command
        self._read = 0  # how many times the map was read (a waiter skips a read done meanwhile)
        self._reading: asyncio.Lock | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.moved = self.asked = self.retried = 0

    def node(self, address: Address) -> LeanRedis:
        """The client of one node (made on first use: one connection each)."""
        node = self._nodes.get(address)
        if node is None:
            t = self.target.at(*address)
            node = self._nodes[address] = LeanRedis(t, self.connect_timeout, self.timeout)
        return node

    async def primaries(self) -> list[LeanRedis]:
        """The nodes that own slots, in slot order."""
        slots = self._slots if self._slots is not None else await self._read_map()
        return list(dict.fromkeys(slots))

    async def _read_map(self) -> list[LeanRedis]:
        """Read the slot map (CLUSTER SLOTS) from the first node that answers: the seed, then
        the others known; one read at a time."""
        if self._reading is None:
            self._reading = asyncio.Lock()
        seen = self._read
        async with self._reading:
            if self._read != seen and self._slots is not None:
                return self._slots  # read by another caller while this one waited
            failure: Exception | None = None
            for address in dict.fromkeys([self._seed, *self._nodes]):
                try:
                    reply = await self.node(address).execute("CLUSTER", "SLOTS")
                except (ConnectionError, TimeoutError, ResponseError) as exc:
                    failure = exc
                    continue
                owners = slot_owners(reply, address)
                first = next((a for a in owners if a is not None), address)
                slots = [self.node(a if a is not None else first) for a in owners]
                self._slots, self._read = slots, self._read + 1
                return slots
            assert failure is not None
            raise failure

    def _read_map_soon(self) -> None:
        task = asyncio.create_task(self._read_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _read_quietly(self) -> None:
        # on failure the MOVED already in the map serves until the next redirection reads again
        with contextlib.suppress(ConnectionError, TimeoutError, ResponseError):
            await self._read_map()

    async def execute(self, *args: Any) -> Any:
        slots = self._slots if self._slots is not None else await self._read_map()
        key = command_key(args)
        node = slots[key_slot(key)] if key is not None else slots[0]
        try:
            return await node.execute(*args)
        except NotSent:
            slots = await self._read_map()  # the node is gone: where is its slot now?
            node = slots[key_slot(key)] if key is not None else slots[0]
        except ResponseError as exc:
            return await self._redirected(exc, node, args)
        try:
            return await node.execute(*args)
        except ResponseError as exc:
            return await self._redirected(exc, node, args)

    async def _redirected(self, exc: ResponseError, node: LeanRedis, args: tuple[Any, ...]) -> Any:
        for attempt in range(1, MAX_REDIRECTS + 1):
            r = redirect(str(exc), (node.host, node.port))
            if r is None:
                raise exc
            if r.kind == "MOVED":
                self.moved += 1
                node = self.node(r.address)
                if self._slots is not None:
                    self._slots[r.slot] = node
                self._read_map_soon()
                call = node.execute(*args)
            elif r.kind == "ASK":
                self.asked += 1
                node = self.node(r.address)
                call = node.asking(*args)
            else:  # TRYAGAIN: the move of the slot is under way; ask its owner again soon
                self.retried += 1
                await asyncio.sleep(TRYAGAIN_SECONDS * attempt)
                key = command_key(args)
                slots = self._slots if self._slots is not None else await self._read_map()
                node = slots[key_slot(key)] if key is not None else slots[0]
                call = node.execute(*args)
            try:
                return await call
            except ResponseError as again:
                exc = again
        raise exc

    # the redis-py-compatible subset the hot paths use (as LeanRedis)
    async def script_load(self, script: str) -> str:
        """Load on every primary (a script runs on the node of its keys' slot)."""
        shas = await asyncio.gather(*(n.script_load(script) for n in await self.primaries()))
        return shas[0]

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        nodes, self._nodes, self._slots = list(self._nodes.values()), {}, None
        await asyncio.gather(*(n.aclose() for n in nodes))
