"""The ledger on a real Redis Cluster (one node holding every slot, so CROSSSLOT is enforced):
every branch of the authorize step and the refund, through the real ``Ledger`` (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tollgate_common.contracts.events import USAGE_STREAM_KEY, UsageEvent, UsageKind
from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger.apikeys import key_hash, new_charge_id
from tollgate_common.ledger.layout import (
    KEYS_SET,
    LAYOUT,
    LAYOUT_VERSION,
    authorize_keys,
    invalid_key,
    plan_copy_key,
    record_key,
    refund_keys,
    usage_key,
)
from tollgate_common.ledger.migration import migrate_all, on_cluster
from tollgate_common.ledger.refill import REFILLED_AT, Refill
from tollgate_common.redis.client import create_redis
from tollgate_common.redis.resp import LeanRedis

KEY_ID = "clusterk"
KEY = f"tg_{KEY_ID}_" + "s" * 43
RECORD = record_key(KEY_ID, key_hash(KEY))
SETTINGS = LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60)


@pytest.fixture
async def admin(cluster_redis_url: str) -> AsyncIterator[Redis]:
    """A redis-py client on the cluster, the key's record in place (10 credits) and the
    exporter's consumer group made (so the usage stream exists)."""
    client = create_redis(cluster_redis_url)
    await client.hset(RECORD, mapping={"id": KEY_ID, "credits": 10})
    await client.xgroup_create(USAGE_STREAM_KEY, "export", id="0", mkstream=True)
    yield client
    await client.aclose()


@pytest.fixture(params=["lean", "redis-py"])
async def ledger(
    request: pytest.FixtureRequest, cluster_redis_url: str, admin: Redis
) -> AsyncIterator[Ledger]:
    """The ledger on the cluster through each hot-path client: the lean one (the gateway's and
    auth's) and redis-py."""
    lean = LeanRedis(cluster_redis_url)
    ledger = Ledger(lean if request.param == "lean" else admin, SETTINGS)
    yield ledger
    await ledger.drain()
    await lean.aclose()


async def on_plan(admin: Redis, **plan: Any) -> None:
    """Put the key on a plan the way auth's store leaves it: the record names the plan, the key's
    copy holds its fields (the store's own scripts are admin-path work on one Redis)."""
    await admin.hset(RECORD, "plan", "p")
    await admin.hset(plan_copy_key(KEY_ID), mapping={"name": "p", **plan})


async def credits(admin: Redis) -> int:
    return int(await admin.hget(RECORD, "credits"))


async def test_an_authorize_charges_on_the_cluster(ledger: Ledger, admin: Redis) -> None:
    """ok: debited, the charge recorded on the key's slot, the usage counted."""
    d = await ledger.authorize(KEY, "/x", 3, "10.0.0.1", route="r")
    assert (d.reason, d.credits_remaining, d.cost) == ("ok", 7, 3)
    assert d.charge_id is not None
    assert d.charge_id.startswith(f"{KEY_ID}-")
    assert await credits(admin) == 7


async def test_too_few_credits_is_refused(ledger: Ledger, admin: Redis) -> None:
    """no_credits: nothing debited."""
    assert (await ledger.authorize(KEY, "/x", 11, "10.0.0.1")).reason == "no_credits"
    assert await credits(admin) == 10


async def test_the_rate_limit_bites(ledger: Ledger, admin: Redis) -> None:
    """rate_limited: the plan's GCRA, read from the key's copy of the plan."""
    await on_plan(admin, rate=0.001, burst=1)
    assert (await ledger.authorize(KEY, "/x", 1, "c")).reason == "ok"
    d = await ledger.authorize(KEY, "/x", 1, "c")
    assert (d.reason, d.plan, d.limit) == ("rate_limited", "p", 1)


async def test_the_plan_copy_prices_the_path(ledger: Ledger, admin: Redis) -> None:
    """The plan's cost for a path prefix comes from the copy too."""
    await on_plan(admin, rate=0, burst=1, **{"cost:/eod": 4})
    d = await ledger.authorize(KEY, "/eod/AAPL", 1, "c")
    assert (d.reason, d.cost, d.credits_remaining) == ("ok", 4, 6)


async def test_an_unknown_key_is_counted_per_client(ledger: Ledger) -> None:
    """invalid_key: the client's count goes up, outside the key's slot, as before."""
    other = "tg_nobodyxx_" + "s" * 43
    counts = [(await ledger.authorize(other, "/x", 1, "6.6.6.6")).invalid_count for _ in range(3)]
    assert counts == [1, 2, 3]
    assert (await ledger.authorize("nonsense", "/x", 1, "6.6.6.6")).invalid_count == 4


async def test_a_revoked_key_is_refused(ledger: Ledger, admin: Redis) -> None:
    """revoked: refused, not charged."""
    await admin.hset(RECORD, "revoked", 1)
    assert (await ledger.authorize(KEY, "/x", 1, "c")).reason == "revoked"
    assert await credits(admin) == 10


async def test_a_due_refill_applies(ledger: Ledger, admin: Redis) -> None:
    """The plan's refill, from the copy, in the same step."""
    await on_plan(admin, rate=0, burst=1, **Refill(amount=5, interval="hourly").to_fields())
    await admin.hset(RECORD, REFILLED_AT, 0)
    d = await ledger.authorize(KEY, "/x", 1, "c")
    assert (d.reason, d.refilled, d.credits_remaining) == ("ok", 5, 14)


async def test_the_me_step_is_free(ledger: Ledger, admin: Redis) -> None:
    """/me: the key's view, nothing charged."""
    d = await ledger.me(KEY, "c")
    assert (d.reason, d.cost, d.credits_remaining) == ("ok", 0, 10)
    assert await credits(admin) == 10


async def test_a_refund_gives_the_charge_back_once(ledger: Ledger, admin: Redis) -> None:
    """refund: credits back once, counted in the usage, both usage events in the stream."""
    d = await ledger.authorize(KEY, "/x", 3, "c", route="r")
    assert d.charge_id is not None
    assert await ledger.refund(d.charge_id, "5xx") == 10
    assert await ledger.refund(d.charge_id) == -1
    await ledger.drain()  # the events are added after the answers
    entries = await admin.xrange(USAGE_STREAM_KEY)
    events = [UsageEvent.from_fields(f) for _, f in entries]
    assert [(e.kind, e.key, e.credits) for e in events] == [
        (UsageKind.CHARGE, KEY_ID, 3),
        (UsageKind.REFUND, KEY_ID, 3),
    ]


async def test_a_refund_before_the_authorize_kills_the_charge_id(
    ledger: Ledger, admin: Redis
) -> None:
    """A refund of a charge id whose authorize comes later: that authorize debits nothing."""
    cid = new_charge_id(KEY_ID)
    assert await ledger.refund(cid) == -1
    assert (await ledger.authorize(KEY, "/x", 3, "c", charge_id=cid)).reason == "refunded"
    assert await credits(admin) == 10


async def test_every_name_of_one_key_is_on_one_slot(cluster_redis_url: str) -> None:
    """What the scripts declare for one API key (and the record and bucket a charge record
    names) hash to one slot, by the cluster's own CLUSTER KEYSLOT."""
    admin = create_redis(cluster_redis_url)
    cid = new_charge_id(KEY_ID)
    names = [
        *authorize_keys(KEY_ID, key_hash(KEY), cid, 1_800_000_000),
        *refund_keys(KEY_ID, cid),
        usage_key(KEY_ID, 1_800_003_600),
    ]
    slots = {await admin.execute_command("CLUSTER", "KEYSLOT", n) for n in names}
    others = {await admin.execute_command("CLUSTER", "KEYSLOT", n) for n in (invalid_key("c"),)}
    await admin.aclose()
    assert len(slots) == 1
    assert others != slots  # the test would prove nothing if everything hashed alike


async def test_a_script_across_slots_is_refused_here(cluster_redis_url: str) -> None:
    """The fixture is a real cluster: two slots in one script fail with CROSSSLOT."""
    admin = create_redis(cluster_redis_url)
    try:
        with pytest.raises(ResponseError, match=r"same slot|CROSSSLOT"):
            await admin.eval("return redis.call('MGET', KEYS[1], KEYS[2])", 2, "a", "b")
    finally:
        await admin.aclose()


async def test_the_start_up_migration_marks_a_cluster_done_without_a_walk(
    cluster_redis_url: str,
) -> None:
    """On a Cluster the old layout never ran: migrate_all marks the layout done at once (its
    multi-slot script never runs), and the ledger then answers an unknown key in two calls."""
    admin = create_redis(cluster_redis_url)
    try:
        assert await on_cluster(admin)
        await admin.sadd(KEYS_SET, KEY_ID)  # a key the walk would visit, were there one
        assert await migrate_all(admin, 60) is None
        assert await admin.get(LAYOUT_VERSION) == str(LAYOUT).encode()
        ledger = Ledger(admin, SETTINGS)
        other = "tg_nobodyxx_" + "s" * 43
        await ledger.authorize(other, "/x", 1, "c")  # loads the scripts, reads the mark
        await admin.config_resetstat()
        assert (await ledger.authorize(other, "/x", 1, "c")).reason == "invalid_key"
        stats = await admin.info("commandstats")
        assert int(stats["cmdstat_evalsha"]["calls"]) == 2
    finally:
        await admin.aclose()


async def test_a_plain_redis_is_no_cluster(redis_url: str, redis_kind: str) -> None:
    """on_cluster says what the session's Redis is: no on a plain one (where migrate.lua may
    run), yes under TOLLGATE_TEST_REDIS=cluster."""
    client = create_redis(redis_url)
    try:
        assert await on_cluster(client) == (redis_kind == "cluster")
    finally:
        await client.aclose()
