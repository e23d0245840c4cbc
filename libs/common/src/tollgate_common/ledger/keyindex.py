"""Walking the key index: a page of key ids from a set, then every id's hash (``layout.id_key``)
in one pipelined round trip. The layout migration, auth's plan fan-out, its expiry backfill and
its plan deletion walk sets this way; the notifier's expiry sweeper pages the expiry index
itself and asks ``hashes`` for the rest, and its outbox sweeper walks the ids alone.

Every command is on one key, so on a Redis Cluster a non-transactional pipeline of them is fine
(redis-py's cluster client splits it by slot); on one node it is one round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from tollgate_common.ledger.layout import id_key
from tollgate_common.redis.commands import Client

PAGE = 500  # ids per SSCAN page: bounded work per round trip


async def hashes(redis: Client, ids: Sequence[str]) -> list[str | None]:
    """Each id's key hash (None for a key that is gone), pipelined."""
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key_id in ids:
            pipe.get(id_key(key_id))
        found = await pipe.execute()
    return [_s(h) if h is not None else None for h in found]


async def pages(
    redis: Client, members: str, count: int = PAGE
) -> AsyncIterator[list[tuple[str, str | None]]]:
    """The ids of the set ``members`` with their hashes, a page at a time (SSCAN: an id added or
    removed during the walk may or may not be seen, every other one is seen at least once)."""
    async for ids in id_pages(redis, members, count):
        yield list(zip(ids, await hashes(redis, ids), strict=True))


async def id_pages(redis: Client, members: str, count: int = PAGE) -> AsyncIterator[list[str]]:
    """The ids of the set ``members``, a page at a time, as ``pages`` walks them (the notifier's
    outbox sweeper needs no hashes)."""
    cursor: Any = 0
    while True:
        cursor, raw = await redis.sscan(members, cursor, count=count)
        yield [_s(i) for i in raw]
        if int(cursor) == 0:
            return


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
