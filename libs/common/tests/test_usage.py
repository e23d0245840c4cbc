"""Usage records as the ledger scripts write them, on a real redis-server: per key, route and
hour, in the same EVALSHA as the charge, never failing a request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger.apikeys import key_hash, new_charge_id
from tollgate_common.ledger.layout import (
    charge_key,
    hour_of,
    plan_copy_key,
    plan_key,
    record_key,
    usage_key,
)
from tollgate_common.ledger.plancopy import PlanCopies

KEY = "tg_usageabc_" + "s" * 43
KEY_ID = "usageabc"
NOW = 1_764_590_400_000 + 125_000  # 2025-12-01T12:02:05Z, in ms
SETTINGS = LedgerSettings(charge_ttl_seconds=60, usage_retention_days=2)


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Ledger]:
    from tollgate_common.redis.client import create_redis

    client = create_redis(redis_url)
    await client.hset(record_key(KEY_ID, key_hash(KEY)), mapping={"id": KEY_ID, "credits": 10})
    ledger = Ledger(client, SETTINGS)
    yield ledger
    await ledger.drain()
    await client.aclose()


async def bucket(ledger: Ledger, at_ms: int = NOW) -> dict[str, int]:
    raw: dict[bytes, bytes] = await ledger.redis.hgetall(usage_key(KEY_ID, hour_of(at_ms)))
    return {k.decode(): int(v) for k, v in raw.items()}


async def ask(ledger: Ledger, cost: int = 3, **kw: Any) -> str:
    kw.setdefault("route", "eod")
    kw.setdefault("now_ms", NOW)
    return (await ledger.authorize(KEY, "/eod/X", cost, "10.0.0.1", **kw)).reason


async def test_a_charge_counts_its_request_and_credits(ledger: Ledger) -> None:
    """An allowed request counts one request and its credits in the key's hour, by route."""
    assert await ask(ledger, 3) == "ok"
    assert await ask(ledger, 0, route="free") == "ok"
    assert await bucket(ledger) == {"requests:eod": 1, "charged:eod": 3, "requests:free": 1}


async def test_hours_are_separate_buckets(ledger: Ledger) -> None:
    """The next hour writes the next bucket."""
    await ask(ledger, 1)
    await ask(ledger, 1, now_ms=NOW + 3_600_000)
    assert await bucket(ledger) == {"requests:eod": 1, "charged:eod": 1}
    assert await bucket(ledger, NOW + 3_600_000) == {"requests:eod": 1, "charged:eod": 1}


async def test_cache_hits_are_counted(ledger: Ledger) -> None:
    """An answer from the cache counts as a hit as well as a request."""
    await ask(ledger, 1, cache_hit=True)
    assert (await bucket(ledger))["hits:eod"] == 1


async def test_a_replayed_charge_counts_once(ledger: Ledger) -> None:
    """An authorize applied twice with one charge id is one request in the usage too."""
    cid = new_charge_id(KEY_ID)
    await ask(ledger, 2, charge_id=cid)
    await ask(ledger, 2, charge_id=cid)
    assert await bucket(ledger) == {"requests:eod": 1, "charged:eod": 2}


async def test_refusals_count_as_4xx(ledger: Ledger) -> None:
    """A known key refused (no credits, rate limited) counts a 4xx and charges nothing."""
    assert await ask(ledger, 11) == "no_credits"
    await ledger.redis.hset(plan_key("tight"), mapping={"rate": 0.01, "burst": 1})
    await ledger.redis.hset(record_key(KEY_ID, key_hash(KEY)), "plan", "tight")
    await PlanCopies().sync(ledger.redis, record_key(KEY_ID, key_hash(KEY)), plan_copy_key(KEY_ID))
    assert await ask(ledger, 1) == "ok"
    assert await ask(ledger, 1) == "rate_limited"
    assert await bucket(ledger) == {"4xx:eod": 2, "requests:eod": 1, "charged:eod": 1}


async def test_refund_counts_credits_back_and_the_status(ledger: Ledger) -> None:
    """A refund counts its credits as refunded, and the class of the answer the client got."""
    cid = new_charge_id(KEY_ID)
    await ask(ledger, 3, charge_id=cid)
    assert await ledger.refund(cid, "5xx") == 10
    assert await ledger.refund(cid, "5xx") == -1  # a second refund counts nothing
    assert await bucket(ledger) == {
        "requests:eod": 1,
        "charged:eod": 3,
        "refunded:eod": 3,
        "5xx:eod": 1,
    }


async def test_buckets_expire_after_the_retention(ledger: Ledger) -> None:
    """Every bucket carries the retention setting as its TTL."""
    await ask(ledger, 1)
    ttl = await ledger.redis.ttl(usage_key(KEY_ID, hour_of(NOW)))
    assert 0 < ttl <= 2 * 86400


async def test_usage_shares_the_key_id_hash_tag() -> None:
    """The bucket names carry {key id}: one API key's usage lives on one Redis Cluster slot."""
    assert "{usageabc}" in usage_key(KEY_ID, hour_of(NOW))
    assert "{usageabc}" in usage_key(KEY_ID, hour_of(NOW + 86_400_000))


async def test_a_broken_bucket_fails_no_request(ledger: Ledger) -> None:
    """A usage bucket Redis cannot write (the wrong type) neither fails the authorize nor the
    refund: the credits move all the same."""
    await ledger.redis.set(usage_key(KEY_ID, hour_of(NOW)), "not a hash")
    cid = new_charge_id(KEY_ID)
    assert await ask(ledger, 4, charge_id=cid) == "ok"
    assert int(await ledger.redis.hget(record_key(KEY_ID, key_hash(KEY)), "credits")) == 6
    assert await ledger.refund(cid, "5xx") == 10


async def test_a_charge_from_before_usage_refunds(ledger: Ledger) -> None:
    """A charge record written before usage existed ('<record>|<cost>') still refunds."""
    cid = new_charge_id(KEY_ID)
    await ledger.redis.hincrby(record_key(KEY_ID, key_hash(KEY)), "credits", -2)
    await ledger.redis.set(charge_key(KEY_ID, cid), f"{record_key(KEY_ID, key_hash(KEY))}|2")
    assert await ledger.refund(cid) == 10
