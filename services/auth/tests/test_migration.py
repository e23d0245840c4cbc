"""Auth's start-up moves a Redis of the untagged layout to the tagged one (issue 13): the admin
API and the ledger see every key, credit and plan as before."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from tollgate_common.ledger import layout as L
from tollgate_common.ledger.apikeys import key_hash

from .conftest import running_admin

RAW = "tg_startup2_" + "s" * 43


async def old_layout(redis_url: str) -> None:
    """One key of 9 credits on plan "p" (burst 4), written the old way."""
    client = aioredis.Redis.from_url(redis_url)
    h = key_hash(RAW)
    await client.hset(L.plan_key("p"), mapping={"rate": 1, "burst": 4})
    await client.sadd(L.PLANS_SET, "p")
    fields = {"id": "startup2", "credits": 9, "plan": "p", "revoked": 0, "expires_at": 0}
    await client.hset(L.legacy_record_key(h), mapping=fields)
    await client.set(L.id_key("startup2"), h)
    await client.sadd(L.KEYS_SET, "startup2")
    await client.aclose()


@pytest.mark.usefixtures("old_layout_possible")  # never on a Redis Cluster (migration.py)
async def test_the_start_up_moves_the_keys_and_marks_the_layout(redis_url: str) -> None:
    """After start-up: the layout mark is set, the key shows its credits and plan, the ledger
    serves it from the moved record with the plan's limits."""
    await old_layout(redis_url)
    async with running_admin(redis_url) as (admin, svc):
        assert svc.redis is not None
        assert svc.ledger is not None
        async with asyncio.timeout(10):
            while True:
                if await svc.redis.get(L.LAYOUT_VERSION) == str(L.LAYOUT).encode():
                    break
                await asyncio.sleep(0.02)
        assert await svc.redis.exists(L.legacy_record_key(key_hash(RAW))) == 0
        shown = (await admin.get("/v1/admin/keys/startup2")).json()
        assert (shown["credits"], shown["plan"]) == (9, "p")
        d = await svc.ledger.authorize(RAW, "/x", 1, "c")
        assert (d.reason, d.limit, d.credits_remaining) == ("ok", 4, 8)
