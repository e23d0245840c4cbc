"""The ledger's scripts write exactly the names ledger/layout.py gives, and the names the Lua
derives itself are spelled as layout spells them (issue 13: one slot per API key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.resources import files

import pytest
from redis.asyncio import Redis

from tollgate_auth import store as auth_store
from tollgate_common.contracts.events import USAGE_STREAM_KEY
from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger import layout as L
from tollgate_common.ledger.apikeys import key_hash
from tollgate_common.redis.client import create_redis

KEY_ID = "layoutab"
KEY = f"tg_{KEY_ID}_" + "s" * 43
HASHED = key_hash(KEY)
NOW = 1_800_000_000_000
LEDGER = files("tollgate_common.ledger")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    await client.hset(
        L.record_key(KEY_ID, HASHED), mapping={"id": KEY_ID, "credits": 10, "plan": "p"}
    )
    await client.hset(L.plan_copy_key(KEY_ID), mapping={"name": "p", "rate": 1, "burst": 5})
    yield client
    await client.aclose()


async def names(redis: Redis) -> set[str]:
    return {k.decode() async for k in redis.scan_iter()}


async def test_an_authorize_and_its_refund_write_the_layouts_names(redis: Redis) -> None:
    """A charge: the record, plan copy, charge record, usage bucket, GCRA state and usage
    outbox of the key (a ledger that has not yet seen whether an exporter's stream is there
    keeps the event), nothing else; its refund: the charge record becomes a tombstone."""
    ledger = Ledger(redis, LedgerSettings(credits_low_threshold=0))
    before = await names(redis)
    d = await ledger.authorize(KEY, "/x", 1, "c", now_ms=NOW)
    assert d.reason == "ok"
    assert d.charge_id is not None
    cid = d.charge_id
    record, copy, charge, tombstone, bucket, rate, outbox = L.authorize_keys(
        KEY_ID, HASHED, cid, L.hour_of(NOW)
    )
    assert before == {record, copy}
    assert await names(redis) == {record, copy, charge, bucket, rate, outbox}
    await ledger.drain()  # no stream: the refund keeps nothing
    assert await ledger.refund(cid) == 10
    assert await names(redis) == {record, copy, tombstone, bucket, rate, outbox}
    await ledger.drain()


async def test_with_an_exporter_a_charge_and_its_refund_also_write_the_outbox(
    redis: Redis,
) -> None:
    """With the usage stream there (an exporter made it), the charge and the refund each keep
    their event in the key's outbox, the one name more (the stream is the global one)."""
    await redis.xgroup_create(USAGE_STREAM_KEY, "export", id="0", mkstream=True)
    ledger = Ledger(redis, LedgerSettings(credits_low_threshold=0))
    before = await names(redis)
    d = await ledger.authorize(KEY, "/x", 1, "c", now_ms=NOW)
    assert d.charge_id is not None
    keys = L.authorize_keys(KEY_ID, HASHED, d.charge_id, L.hour_of(NOW))
    outbox = keys[-1]
    assert outbox == L.outbox_key(KEY_ID)
    assert await names(redis) == before | {keys[2], keys[4], keys[5], outbox}
    assert await ledger.refund(d.charge_id) >= 0
    assert L.refund_keys(KEY_ID, d.charge_id)[-1] == outbox
    assert await redis.zcard(outbox) == 2
    await ledger.drain()


async def test_an_unknown_key_writes_only_its_clients_counter(redis: Redis) -> None:
    """invalid_key: the client's counter, nothing of any key."""
    ledger = Ledger(redis, LedgerSettings())
    before = await names(redis)
    await ledger.authorize("tg_nobodyxy_" + "s" * 43, "/x", 1, "6.6.6.6")
    assert await names(redis) == before | {L.invalid_key("6.6.6.6")}


def test_the_names_the_lua_derives_are_layouts() -> None:
    """The admin-path and migration scripts build a few names from what they read; each is
    spelled there as layout spells it."""
    plancopy = (LEDGER / "plancopy.lua").read_text()
    assert f"'{L.plan_keys_key('')}'" in plancopy
    assert f"'{L.plan_key('')}'" in plancopy
    assert f"'{L.moved_key('')}'" in (LEDGER / "refund.lua").read_text()


def test_the_admin_scripts_derive_no_names() -> None:
    """auth's store scripts touch only their KEYS (one slot each on a Redis Cluster, issue 13):
    none spells a name of its own."""
    scripts = [
        v
        for k, v in vars(auth_store).items()
        if k.isupper() and isinstance(v, str) and "redis.call" in v
    ]
    assert len(scripts) >= 8
    assert not [s for s in scripts if L.P in s]


def test_one_keys_names_share_its_hash_tag() -> None:
    """Every per-key name carries ``{id}`` (Redis Cluster hashes only what is inside)."""
    per_key = [*L.authorize_keys(KEY_ID, HASHED, "c", 0), *L.refund_keys(KEY_ID, "c")]
    assert all(f"{{{KEY_ID}}}" in n for n in per_key)
    assert L.refund_keys(None, "c") == [L.legacy_charge_key("c"), L.legacy_tombstone_key("c")]
