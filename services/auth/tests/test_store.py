"""The authorize script against a real redis-server: every reason, exact accounting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tollgate_auth.errors import Conflict
from tollgate_auth.models import KeyCreate, KeyPatch, Plan
from tollgate_auth.store import Store
from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger.alerts import events_for
from tollgate_common.ledger.layout import (
    EXPIRIES,
    KEYS_SET,
    id_key,
    legacy_record_key,
    plan_copy_key,
    plan_keys_key,
)
from tollgate_common.ledger.plancopy import VERSION
from tollgate_common.redis.client import create_redis

SETTINGS = LedgerSettings(charge_ttl_seconds=60, credits_low_threshold=2)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    client = create_redis(redis_url)
    yield Store(client, pepper="")
    await client.aclose()


@pytest.fixture
async def ledger(store: Store) -> AsyncIterator[Ledger]:
    """The ledger on the store's Redis (the script every authorize runs)."""
    ledger = Ledger(store.redis, SETTINGS)
    yield ledger
    await ledger.drain()  # its usage events, before the store's client closes


async def auth(ledger: Ledger, raw: str, path: str = "/eod/AAPL", cost: int = 1) -> str:
    o = await ledger.authorize(raw, path, cost, "10.0.0.1")
    return o.reason


async def test_ok_debits_credits(store: Store, ledger: Ledger) -> None:
    """An allowed request costs exactly its cost."""
    k = await store.create_key(KeyCreate(credits=5))
    assert await auth(ledger, k.key, cost=2) == "ok"
    assert (await store.get_key(k.id)).credits == 3


async def test_unknown_and_malformed_keys(store: Store, ledger: Ledger) -> None:
    """A key that does not exist or is malformed is invalid_key."""
    assert await auth(ledger, "tg_aaaaaaaa_" + "b" * 43) == "invalid_key"
    assert await auth(ledger, "nonsense") == "invalid_key"


async def test_revoked_key(store: Store, ledger: Ledger) -> None:
    """A revoked key is refused at once and not charged."""
    k = await store.create_key(KeyCreate(credits=5))
    await store.revoke(k.id)
    assert await auth(ledger, k.key) == "revoked"
    assert (await store.get_key(k.id)).credits == 5


async def test_expired_key(store: Store, ledger: Ledger) -> None:
    """A key past its expiry is refused; clearing the expiry restores it."""
    k = await store.create_key(KeyCreate(credits=5, expires_at=time.time() - 1))
    assert await auth(ledger, k.key) == "expired"
    await store.patch_key(k.id, KeyPatch(expires_at=0))
    assert await auth(ledger, k.key) == "ok"


async def test_no_credits(store: Store, ledger: Ledger) -> None:
    """Credits below the cost refuse without going negative."""
    k = await store.create_key(KeyCreate(credits=1))
    assert await auth(ledger, k.key, cost=2) == "no_credits"
    assert (await store.get_key(k.id)).credits == 1


async def test_plan_cost_by_longest_prefix(store: Store, ledger: Ledger) -> None:
    """The plan's cost for the longest matching prefix overrides the route's cost."""
    await store.put_plan(Plan(name="p", costs={"/eod": 3, "/eod/premium": 7}))
    k = await store.create_key(KeyCreate(credits=20, plan="p"))
    assert await auth(ledger, k.key, path="/eod/AAPL", cost=1) == "ok"
    assert (await store.get_key(k.id)).credits == 17
    assert await auth(ledger, k.key, path="/eod/premium/X", cost=1) == "ok"
    assert (await store.get_key(k.id)).credits == 10
    assert await auth(ledger, k.key, path="/other", cost=1) == "ok"
    assert (await store.get_key(k.id)).credits == 9


async def test_rate_limit_does_not_charge(store: Store, ledger: Ledger) -> None:
    """Past the burst: rate_limited, and the refused request costs nothing."""
    await store.put_plan(Plan(name="slow", rate=0.1, burst=2))
    k = await store.create_key(KeyCreate(credits=10, plan="slow"))
    assert [await auth(ledger, k.key) for _ in range(4)] == [
        "ok",
        "ok",
        "rate_limited",
        "rate_limited",
    ]
    assert (await store.get_key(k.id)).credits == 8


async def test_refund_once(store: Store, ledger: Ledger) -> None:
    """A charge comes back exactly once, however often it is refunded."""
    k = await store.create_key(KeyCreate(credits=5))
    o = await ledger.authorize(k.key, "/x", 2, "")
    assert o.charge_id is not None
    assert await ledger.refund(o.charge_id) == 5
    assert await ledger.refund(o.charge_id) == -1
    assert (await store.get_key(k.id)).credits == 5


async def test_concurrent_authorize_is_exact(store: Store, ledger: Ledger) -> None:
    """200 concurrent requests on 37 credits: exactly 37 pass and the balance ends at 0."""
    k = await store.create_key(KeyCreate(credits=37))
    reasons = await asyncio.gather(*(auth(ledger, k.key) for _ in range(200)))
    assert reasons.count("ok") == 37
    assert reasons.count("no_credits") == 163
    assert (await store.get_key(k.id)).credits == 0


async def test_script_reloads_after_flush(store: Store, ledger: Ledger) -> None:
    """Redis forgetting the script (restart, SCRIPT FLUSH) is handled."""
    k = await store.create_key(KeyCreate(credits=5))
    assert await auth(ledger, k.key) == "ok"
    await store.redis.script_flush()
    assert await auth(ledger, k.key) == "ok"


async def test_low_and_exhausted_events(store: Store, ledger: Ledger) -> None:
    """Crossing the low threshold and reaching zero are flagged once each."""
    k = await store.create_key(KeyCreate(credits=3))
    kinds = []
    for _ in range(3):
        result = await ledger.authorize(k.key, "/x", 1, "c")
        kinds += [e.type.value for e in events_for(result, "r", "c", 100, "auth")]
    assert kinds == ["credits.low", "credits.exhausted"]


async def test_invalid_key_burst_flagged_once(ledger: Ledger) -> None:
    """The burst threshold of invalid keys from one address raises one event per window."""
    kinds = []
    for _ in range(8):
        result = await ledger.authorize("tg_zzzzzzzz_" + "q" * 43, "/x", 1, "6.6.6.6")
        kinds += [e.type.value for e in events_for(result, "r", "6.6.6.6", 5, "auth")]
    assert kinds == ["key.invalid_burst"]


async def expiries(store: Store) -> dict[str, int]:
    return {
        m.decode(): int(s) for m, s in await store.redis.zrange(EXPIRIES, 0, -1, withscores=True)
    }


async def test_the_expiry_index_follows_create_patch_and_revoke(store: Store) -> None:
    """A key that expires is indexed at its expiry in ms; a moved expiry moves it, 0 (never)
    and revoking remove it; a key that never expires is not indexed."""
    at = time.time() + 3600
    k = await store.create_key(KeyCreate(expires_at=at))
    never = await store.create_key(KeyCreate())
    assert await expiries(store) == {k.id: int(at * 1000)}
    await store.patch_key(k.id, KeyPatch(expires_at=at + 60))
    assert await expiries(store) == {k.id: int((at + 60) * 1000)}
    await store.patch_key(k.id, KeyPatch(expires_at=0))
    assert await expiries(store) == {}
    await store.patch_key(k.id, KeyPatch(expires_at=at))
    await store.patch_key(never.id, KeyPatch(name="renamed"))
    assert await expiries(store) == {k.id: int(at * 1000)}
    await store.revoke(k.id)
    assert await expiries(store) == {}
    await store.patch_key(k.id, KeyPatch(expires_at=at))  # revoked: stays out
    assert await expiries(store) == {}


async def test_the_backfill_indexes_live_keys_made_before_the_index(store: Store) -> None:
    """Keys whose index entries are missing (made by an older auth): the backfill adds the live
    ones that expire later, not revoked, expired or never-expiring keys; a second run adds
    nothing."""
    now = time.time()
    later = [await store.create_key(KeyCreate(expires_at=now + 3600 + i)) for i in range(1200)]
    past = await store.create_key(KeyCreate(expires_at=now - 10))
    revoked = await store.create_key(KeyCreate(expires_at=now + 60))
    await store.revoke(revoked.id)
    await store.create_key(KeyCreate())
    await store.redis.delete(EXPIRIES)
    assert await store.backfill_expiries(int(now * 1000)) == len(later)
    assert set(await expiries(store)) == {k.id for k in later}
    assert past.id not in await expiries(store)
    assert await store.backfill_expiries(int(now * 1000)) == 0


# --- a key's copy of its plan (the authorize step reads the copy, never the plan; issue 13)
async def copy_of(store: Store, key_id: str) -> dict[str, str]:
    """The key's copy of its plan, without the plan's version (plancopy.VERSION: it orders
    updates, the authorize step never reads it)."""
    raw = await store.redis.hgetall(plan_copy_key(key_id))
    return {k.decode(): v.decode() for k, v in raw.items() if k != VERSION.encode()}


async def test_a_key_on_a_plan_gets_a_copy_of_it(store: Store) -> None:
    """Made on a plan: the key's copy holds the plan's fields and its name; the plan lists it."""
    await store.put_plan(Plan(name="p", rate=2, burst=3, costs={"/eod": 4}))
    k = await store.create_key(KeyCreate(credits=5, plan="p"))
    assert await copy_of(store, k.id) == {
        "name": "p",
        "rate": "2.0",
        "burst": "3",
        "cost:/eod": "4",
    }
    assert await store.redis.smembers(plan_keys_key("p")) == {k.id.encode()}


async def test_a_plan_change_reaches_every_key_on_it(store: Store, ledger: Ledger) -> None:
    """put_plan fans out: every key's copy is the new plan, and the ledger prices by it."""
    await store.put_plan(Plan(name="p", costs={"/eod": 1}))
    keys = [await store.create_key(KeyCreate(credits=50, plan="p")) for _ in range(3)]
    other = await store.create_key(KeyCreate(credits=50))
    await store.put_plan(Plan(name="p", costs={"/eod": 7}))
    for k in keys:
        assert (await copy_of(store, k.id))["cost:/eod"] == "7"
        d = await ledger.authorize(k.key, "/eod/AAPL", 1, "c")
        assert (d.reason, d.cost) == ("ok", 7)
    assert await copy_of(store, other.id) == {}


async def test_a_key_moved_to_another_plan_takes_its_copy(store: Store) -> None:
    """patch plan: the copy is the new plan's, the member sets follow; no plan, no copy."""
    await store.put_plan(Plan(name="p", burst=2))
    await store.put_plan(Plan(name="q", burst=9))
    k = await store.create_key(KeyCreate(plan="p"))
    await store.patch_key(k.id, KeyPatch(plan="q"))
    assert (await copy_of(store, k.id))["burst"] == "9"
    assert await store.redis.smembers(plan_keys_key("p")) == set()
    assert await store.redis.smembers(plan_keys_key("q")) == {k.id.encode()}
    await store.put_plan(Plan(name="p", burst=3))  # a change of the old plan leaves it alone
    assert (await copy_of(store, k.id))["burst"] == "9"
    await store.patch_key(k.id, KeyPatch(plan=""))
    assert await copy_of(store, k.id) == {}


async def test_a_deleted_plan_takes_its_copies_along(store: Store) -> None:
    """delete_plan (no live key on it): the revoked keys' copies and the member set go too."""
    await store.put_plan(Plan(name="p", burst=2))
    k = await store.create_key(KeyCreate(plan="p"))
    await store.revoke(k.id)
    await store.delete_plan("p")
    assert await copy_of(store, k.id) == {}
    assert await store.redis.exists(plan_keys_key("p")) == 0


async def test_a_plan_a_key_of_the_old_layout_uses_is_not_deleted(store: Store) -> None:
    """A key not moved yet (in no member set) still keeps its plan from being deleted."""
    await store.put_plan(Plan(name="p"))
    await store.redis.hset(legacy_record_key("h-old"), mapping={"id": "oldkey22", "plan": "p"})
    await store.redis.set(id_key("oldkey22"), "h-old")
    await store.redis.sadd(KEYS_SET, "oldkey22")
    with pytest.raises(Conflict):
        await store.delete_plan("p")
