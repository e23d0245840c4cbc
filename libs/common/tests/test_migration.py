"""The move to the tagged layout (ledger/migration.py) against a real redis-server holding data
written the old way: keys, credits, plans, rate state, usage and charges in flight survive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger import layout as L
from tollgate_common.ledger.apikeys import key_hash
from tollgate_common.ledger.migration import migrate_all, migrate_key
from tollgate_common.redis.client import create_redis

# data of the old layout never lives on a Redis Cluster (TOLLGATE_TEST_REDIS=cluster)
pytestmark = pytest.mark.usefixtures("old_layout_possible")
SETTINGS = LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60)
IDS = ["olda2345", "oldb2345", "oldc2345"]


def raw(key_id: str) -> str:
    return f"tg_{key_id}_" + "s" * 43


@pytest.fixture
async def old(redis_url: str) -> AsyncIterator[Redis]:
    """A Redis as today's deployments leave it: three keys on plan "p" (rate-limited, a price
    for /eod), one with GCRA state, and a charge of 2 credits in flight on the first."""
    client = create_redis(redis_url)
    await client.hset(L.plan_key("p"), mapping={"rate": 0.001, "burst": 2, "cost:/eod": 2})
    await client.sadd(L.PLANS_SET, "p")
    for key_id in IDS:
        h = key_hash(raw(key_id))
        record = {"id": key_id, "credits": 10, "plan": "p", "revoked": 0, "expires_at": 0}
        await client.hset(L.legacy_record_key(h), mapping=record)
        await client.set(L.id_key(key_id), h)
        await client.sadd(L.KEYS_SET, key_id)
    await client.set(L.legacy_rate_key(IDS[0]), 10**15, px=600_000)
    h0 = key_hash(raw(IDS[0]))
    await client.hincrby(L.legacy_record_key(h0), "credits", -2)
    bucket = L.usage_key(IDS[0], L.hour_of(0))
    await client.set(L.legacy_charge_key("0123abcd0123"), f"{L.legacy_record_key(h0)}|2|{bucket}|r")
    yield client
    await client.aclose()


async def test_the_walk_moves_every_key_with_what_it_holds(old: Redis) -> None:
    """Records (credits), GCRA state (with its TTL), plan copies and member set, the done mark."""
    assert await migrate_all(old, 60) == 3
    for key_id in IDS:
        h = key_hash(raw(key_id))
        assert await old.exists(L.legacy_record_key(h)) == 0
        assert await old.hget(L.record_key(key_id, h), "plan") == b"p"
        copy = await old.hgetall(L.plan_copy_key(key_id))
        assert copy == {b"name": b"p", b"rate": b"0.001", b"burst": b"2", b"cost:/eod": b"2"}
    assert int(await old.hget(L.record_key(IDS[0], key_hash(raw(IDS[0]))), "credits")) == 8
    assert await old.get(L.rate_key(IDS[0])) == str(10**15).encode()
    assert 0 < await old.pttl(L.rate_key(IDS[0])) <= 600_000
    assert await old.smembers(L.plan_keys_key("p")) == {k.encode() for k in IDS}
    assert await old.get(L.LAYOUT_VERSION) == str(L.LAYOUT).encode()


async def test_the_walk_is_idempotent(old: Redis) -> None:
    """Once done, a start-up walks nothing; a key moved twice moves once."""
    assert await migrate_all(old, 60) == 3
    assert await migrate_all(old, 60) is None
    h = key_hash(raw(IDS[1]))
    assert await migrate_key(old, IDS[1], h, 60) == 0
    assert int(await old.hget(L.record_key(IDS[1], h), "credits")) == 10


async def test_two_replicas_starting_together_move_each_key_once(old: Redis) -> None:
    """Two walks at once: one holds the lock and moves all, the other skips; nothing is lost."""
    results = await asyncio.gather(migrate_all(old, 60), migrate_all(old, 60))
    assert sorted(results, key=str) == [3, None]
    moved = [await old.hget(L.record_key(k, key_hash(raw(k))), "credits") for k in IDS]
    assert moved == [b"8", b"10", b"10"]


async def test_one_key_moved_at_once_twice_moves_once(old: Redis) -> None:
    """The ledger and a walk moving one key at the same moment: one moves it, one finds it moved."""
    h = key_hash(raw(IDS[2]))
    assert sorted(await asyncio.gather(*(migrate_key(old, IDS[2], h, 60) for _ in range(4)))) == [
        0,
        0,
        0,
        1,
    ]


async def test_an_authorize_before_the_walk_moves_its_key_and_is_served(old: Redis) -> None:
    """Half-moved data (the walk not run yet): the ledger moves the key it is asked for, then
    answers from the moved record, plan and rate state (never from the old names)."""
    ledger = Ledger(old, SETTINGS)
    d = await ledger.authorize(raw(IDS[1]), "/eod/AAPL", 1, "c")
    assert (d.reason, d.cost, d.credits_remaining, d.plan) == ("ok", 2, 8, "p")
    h = key_hash(raw(IDS[1]))
    assert await old.exists(L.legacy_record_key(h)) == 0
    # the first key's GCRA state came along: its old TAT far ahead still limits it
    assert (await ledger.authorize(raw(IDS[0]), "/x", 1, "c")).reason == "rate_limited"
    await ledger.drain()


async def test_a_charge_in_flight_from_before_is_refunded_after_the_move(old: Redis) -> None:
    """A charge id of the old kind (no key id in it) refunds through the old names into the
    moved record, once."""
    await migrate_all(old, 60)
    ledger = Ledger(old, SETTINGS)
    assert await ledger.refund("0123abcd0123", "5xx") == 10
    assert await ledger.refund("0123abcd0123") == -1
    bucket = await old.hgetall(L.usage_key(IDS[0], L.hour_of(0)))
    assert bucket == {b"refunded:r": b"2", b"5xx:r": b"1"}


async def test_an_unknown_key_is_still_unknown(old: Redis) -> None:
    """No record in either layout: invalid_key, counted, nothing made."""
    ledger = Ledger(old, SETTINGS)
    d = await ledger.authorize(raw("nobody23"), "/x", 1, "c")
    assert (d.reason, d.invalid_count) == ("invalid_key", 1)
    assert await old.exists(L.record_key("nobody23", key_hash(raw("nobody23")))) == 0


async def commands(redis: Redis) -> int:
    """How many calls the ledger made since the last CONFIG RESETSTAT: it only ever sends
    EVALSHA (and SCRIPT LOAD once per script); commandstats also counts what the scripts call
    inside, which is no round trip."""
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_get"))


async def unknown_key_cost(ledger: Ledger, redis: Redis) -> int:
    """Redis commands per unknown-key answer, over three of them (scripts loaded before)."""
    await ledger.authorize(raw("nobody23"), "/x", 1, "c")
    await redis.config_resetstat()
    for _ in range(3):
        assert (await ledger.authorize(raw("nobody23"), "/x", 1, "c")).reason == "invalid_key"
    n = await commands(redis)
    assert n % 3 == 0, n
    return n // 3


async def test_after_the_migration_an_unknown_key_costs_two_commands(old: Redis) -> None:
    """Layout marked done: the authorize script and the invalid-key counter, no legacy probe."""
    await migrate_all(old, 60)
    assert await unknown_key_cost(Ledger(old, SETTINGS), old) == 2


async def test_before_the_migration_the_probe_still_runs_and_moves_a_key(old: Redis) -> None:
    """Layout not marked: the probe costs its command, and a key of the old layout is moved on
    demand and served, even after an unknown key's answer was cached as "not done"."""
    ledger = Ledger(old, SETTINGS)
    assert await unknown_key_cost(ledger, old) == 3
    d = await ledger.authorize(raw(IDS[2]), "/eod/AAPL", 1, "c")
    assert (d.reason, d.credits_remaining) == ("ok", 8)
    assert await old.exists(L.legacy_record_key(key_hash(raw(IDS[2])))) == 0
    await ledger.drain()
