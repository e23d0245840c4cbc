"""The ledger on a real three-primary Redis Cluster, through the lean cluster client and
redis-py's: keys on every node charged and refunded exactly, and exactly while their slot
moves between two nodes (issue 13)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError

from tollgate_common.contracts.events import USAGE_STREAM_KEY
from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger.apikeys import key_hash
from tollgate_common.ledger.layout import record_key
from tollgate_common.redis.client import AnyRedis, Lean, create_lean, create_redis
from tollgate_common.redis.cluster import LeanCluster
from tollgate_common.redis.slots import key_slot
from tollgate_testkit.redis_cluster import RedisClusterNodes

SETTINGS = LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60)
START = 10_000


def raw_key(key_id: str) -> str:
    return f"tg_{key_id}_" + "s" * 43


async def credits(admin: AnyRedis, key_id: str) -> int:
    return int(await admin.hget(record_key(key_id, key_hash(raw_key(key_id))), "credits"))


@pytest.fixture
async def admin(redis_cluster: RedisClusterNodes) -> AsyncIterator[AnyRedis]:
    """redis-py's cluster client, with the usage stream made (as the exporter does)."""
    client = create_redis(redis_cluster.url)
    await client.xgroup_create(USAGE_STREAM_KEY, "export", id="0", mkstream=True)
    yield client
    await client.aclose()


async def put_keys(admin: AnyRedis, key_ids: list[str]) -> None:
    for key_id in key_ids:
        rec = record_key(key_id, key_hash(raw_key(key_id)))
        await admin.hset(rec, mapping={"id": key_id, "credits": START})


@pytest.fixture(params=["lean", "redis-py"])
async def ledger(
    request: pytest.FixtureRequest, redis_cluster: RedisClusterNodes, admin: AnyRedis
) -> AsyncIterator[tuple[Ledger, Lean | None]]:
    """The ledger through the lean cluster client or redis-py's (with the lean one, or None)."""
    lean = create_lean(redis_cluster.url) if request.param == "lean" else None
    ledger = Ledger(lean if lean is not None else admin, SETTINGS)
    yield ledger, lean
    await ledger.drain()
    if lean is not None:
        await lean.aclose()


async def test_charges_and_refunds_on_every_node_are_exact(
    redis_cluster: RedisClusterNodes, ledger: tuple[Ledger, Lean | None], admin: AnyRedis
) -> None:
    """Keys on all three nodes: each authorize debits its key, a refund gives it back once,
    the usage events land in the one stream."""
    led, _ = ledger
    key_ids = redis_cluster.key_ids_on_every_node()
    await put_keys(admin, key_ids)
    for n, key_id in enumerate(key_ids, start=1):
        charges = [await led.authorize(raw_key(key_id), "/x", n, "c") for _ in range(3)]
        assert [d.reason for d in charges] == ["ok"] * 3
        assert charges[0].charge_id is not None
        assert await led.refund(charges[0].charge_id, "5xx") == START - 2 * n
        assert await led.refund(charges[0].charge_id) == -1
        assert await credits(admin, key_id) == START - 2 * n
    await led.drain()
    assert await admin.xlen(USAGE_STREAM_KEY) == 4 * len(key_ids)


async def test_an_unknown_key_is_counted(ledger: tuple[Ledger, Lean | None]) -> None:
    """invalid_key: the client's counter, on its own slot, goes up."""
    led, _ = ledger
    counts = [
        (await led.authorize(raw_key("nobodyzz"), "/x", 1, "6.6.6.6")).invalid_count
        for _ in range(3)
    ]
    assert counts == [1, 2, 3]


async def test_no_charge_is_lost_or_doubled_while_the_slot_moves(
    redis_cluster: RedisClusterNodes, ledger: tuple[Ledger, Lean | None], admin: AnyRedis
) -> None:
    """A bounded loop of authorizes on one key while its slot moves to another node, key by key
    (with the key's earlier charges and 300 more keys of the slot): every answer "ok" debited
    once, nothing else debited. The lean client counts the MOVED it followed."""
    led, lean = ledger
    key_id = redis_cluster.key_ids_on_every_node(per_node=1)[0]
    await put_keys(admin, [key_id])
    for i in range(300):
        await admin.set(f"tollgate:fill:{{{key_id}}}:{i}", b"x")
    ok = 0
    for _ in range(20):  # charges (and their records) of the slot before the move
        ok += (await led.authorize(raw_key(key_id), "/x", 1, "c")).reason == "ok"
    slot = key_slot(f"{{{key_id}}}")
    src = redis_cluster.owner(slot)
    dst = next(n for n in redis_cluster.nodes if n is not src)
    move = asyncio.ensure_future(
        asyncio.to_thread(redis_cluster.move_slot, slot, dst, batch=10, pause=0.005)
    )
    failed = after = 0
    for _ in range(5000):  # bounded: until the move is done, then 20 more
        try:
            d = await led.authorize(raw_key(key_id), "/x", 1, "c")
        except RedisError:
            failed += 1  # refused before it ran (TRYAGAIN too long): nothing debited
        else:
            assert d.reason == "ok"
            ok += 1
        if move.done():
            after += 1
            if after >= 20:
                break
    await move
    assert redis_cluster.owner(slot) is dst
    assert await credits(admin, key_id) == START - ok
    assert ok >= 40
    if isinstance(lean, LeanCluster):
        assert lean.moved >= 1
        assert failed == 0


async def test_an_authorize_mid_move_is_asked_on_then_served(
    redis_cluster: RedisClusterNodes, admin: AnyRedis
) -> None:
    """Every key of the slot already on the importing node: the lean client's authorize gets
    ASK (then TRYAGAIN: the script's new charge record is on neither node) and is served once
    the move ends, debited once."""
    lean = create_lean(redis_cluster.url)
    assert isinstance(lean, LeanCluster)
    led = Ledger(lean, SETTINGS)
    key_id = redis_cluster.key_ids_on_every_node(per_node=1)[1]
    await put_keys(admin, [key_id])
    slot = key_slot(f"{{{key_id}}}")
    src = redis_cluster.owner(slot)
    dst = next(n for n in redis_cluster.nodes if n is not src)
    try:
        assert (await led.authorize(raw_key(key_id), "/x", 1, "c")).reason == "ok"
        redis_cluster.begin_move(slot, dst)
        assert redis_cluster.migrate_keys(slot, src, dst) >= 2  # the record and the charge
        authorize = asyncio.ensure_future(led.authorize(raw_key(key_id), "/x", 2, "c"))
        for _ in range(500):  # bounded wait for its first ASK
            if lean.asked:
                break
            await asyncio.sleep(0.01)
        assert lean.asked >= 1
        assert not authorize.done()
        await asyncio.to_thread(redis_cluster.finish_move, slot, dst)
        d = await authorize
        assert (d.reason, d.credits_remaining) == ("ok", START - 3)
        assert lean.retried >= 1
        assert await credits(admin, key_id) == START - 3
    finally:
        await led.drain()
        await lean.aclose()
