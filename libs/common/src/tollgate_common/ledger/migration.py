"""The move of the ledger's data to the tagged layout (layout.py; issue 13, Redis Cluster).

Before it, a key's record, GCRA state, charges and tombstones had untagged names
(``layout.legacy_*``) and the authorize step read the plan itself. Moving one key is one atomic,
idempotent Lua step (migrate.lua): RENAME of the record and the GCRA state (their TTLs and every
field kept: credits, refill, revocation), a pointer from the old record name to the new one for
the refunds of charges made before (refund.lua), and the key's plan copy (plancopy.lua). The
usage buckets were tagged already and stay.

Two ways a key moves, both safe to run at once for one key:

- ``migrate_all``: auth, at start-up, walks the key set in pages under a lock (a second replica
  starting at the same time skips the walk: the first does it) and marks the data done
  (``layout.LAYOUT_VERSION``), so later start-ups cost one GET.
- ``Ledger.authorize`` (both auth modes) and auth's store, on demand: an authorize that finds no
  record while an old one exists moves that key first and asks again, so neither service ever
  answers from half-moved data nor refuses a key the walk has not reached.

Old data only ever lives on one Redis (the old layout cannot run on a Cluster), so migrate.lua
may name keys of several slots: it runs only where ``on_cluster`` says no. On a Cluster there is
nothing to move: ``migrate_all`` marks the layout done without a walk, auth's store never calls
``migrate_key`` there, and the ledger stops probing once it has seen the mark (ledger.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from importlib.resources import files

from tollgate_common.ledger import keyindex, layout
from tollgate_common.ledger.plancopy import with_copy_plan
from tollgate_common.redis.client import LuaScript
from tollgate_common.redis.commands import Client, Scripts

log = logging.getLogger(__name__)

PAGE = 500
LOCK_SECONDS = 60  # renewed every page: a replica that dies mid-walk frees it within a minute
_MIGRATE = with_copy_plan((files("tollgate_common.ledger") / "migrate.lua").read_text())
_PROBE = LuaScript("return redis.call('EXISTS', KEYS[1])")
# No KEYS: INFO is no key's (any node answers; every node of a Cluster says it is one).
_CLUSTER_INFO = LuaScript("return redis.call('INFO', 'cluster')")


async def on_cluster(redis: Scripts) -> bool:
    """Whether this Redis runs in cluster mode (INFO cluster: ``cluster_enabled:1``)."""
    info = await _CLUSTER_INFO(redis, [], [])
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_enabled:1" in text


async def migrate_key(redis: Scripts, key_id: str, hashed: str, pointer_ttl_s: int) -> int:
    """Move one key (migrate.lua): 1 moved now, 0 moved before, -1 no such record."""
    keys = [
        layout.legacy_record_key(hashed),
        layout.record_key(key_id, hashed),
        layout.legacy_rate_key(key_id),
        layout.rate_key(key_id),
        layout.moved_key(hashed),
        layout.plan_copy_key(key_id),
    ]
    moved: int = await _MIGRATE(redis, keys, [key_id, max(pointer_ttl_s, 1)])
    return moved


async def legacy_exists(redis: Scripts, hashed: str) -> bool:
    """Whether a record of the old layout is there for this hash (one key: fine on a Cluster)."""
    return bool(await _PROBE(redis, [layout.legacy_record_key(hashed)], []))


async def migrate_all(redis: Client, pointer_ttl_s: int) -> int | None:
    """Move every key of the key set; returns how many moved, or None when there was nothing to
    do (done before) or another replica holds the lock."""
    if await redis.get(layout.LAYOUT_VERSION) == str(layout.LAYOUT).encode():
        return None
    if await on_cluster(redis):
        # the old layout never ran on a Cluster: nothing to move, and migrate.lua (several
        # slots) could not run here anyway
        await redis.set(layout.LAYOUT_VERSION, layout.LAYOUT)
        return None
    token = secrets.token_hex(8)
    if not await redis.set(layout.MIGRATION_LOCK, token, ex=LOCK_SECONDS, nx=True):
        log.info("layout migration: another replica is at it")
        return None
    moved = 0
    try:
        async for page in keyindex.pages(redis, layout.KEYS_SET, PAGE):
            steps = [
                migrate_key(redis, key_id, h, pointer_ttl_s) for key_id, h in page if h is not None
            ]
            moved += sum(1 for n in await asyncio.gather(*steps) if n == 1)
            await redis.set(layout.MIGRATION_LOCK, token, ex=LOCK_SECONDS)
        await redis.set(layout.LAYOUT_VERSION, layout.LAYOUT)
    finally:
        if await redis.get(layout.MIGRATION_LOCK) == token.encode():
            await redis.delete(layout.MIGRATION_LOCK)
    log.info(
        "layout migration: %d keys moved to the tagged layout (layout %d)", moved, layout.LAYOUT
    )
    return moved
