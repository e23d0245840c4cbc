"""The usage outbox's two readers against a real redis-server and the real ledger scripts: the
exporter removes each event it read from its key's outbox; the outbox sweeper re-sends the
events whose XADD never happened, only past the horizon, once, under its lock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tollgate_common.contracts.events import USAGE_STREAM_KEY, UsageEvent
from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger.apikeys import key_hash, new_charge_id
from tollgate_common.ledger.layout import KEYS_SET, outbox_key, record_key
from tollgate_common.ledger.layout import id_key as key_index_key
from tollgate_common.redis.client import create_redis
from tollgate_notifier.export import Exporter, UsageClient
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.outbox import LOCK, OutboxSweeper, horizon
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.streams import ensure_group
from tollgate_testkit.receivers import UsageReceiver
from tollgate_testkit.redis_cluster import RedisClusterNodes

KEY_ID = "abcdefgh"
KEY = f"tg_{KEY_ID}_" + "s" * 43
OUTBOX = outbox_key(KEY_ID)
GROUP = "tollgate-usage-export"
GRACE_S = 60.0
QUIET = LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60)
Make = Callable[..., Any]


def settings(redis_url: str, **overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "usage_outbox_grace_seconds": GRACE_S,
        "consumer": "sweeper-a",
    }
    return NotifierSettings(**(values | overrides))


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Ledger]:
    """A ledger of one known key (in the key set) that has seen the exporter's stream."""
    client = create_redis(redis_url)
    hashed = key_hash(KEY)
    await client.hset(record_key(KEY_ID, hashed), mapping={"id": KEY_ID, "credits": 10_000})
    await client.set(key_index_key(KEY_ID), hashed)
    await client.sadd(KEYS_SET, KEY_ID)
    await ensure_group(client, USAGE_STREAM_KEY, GROUP)
    ledger = Ledger(client, QUIET)
    await charge(ledger)  # the first charge learns the stream is there
    await ledger.drain()
    await client.delete(USAGE_STREAM_KEY)
    await client.delete(OUTBOX)
    await ensure_group(client, USAGE_STREAM_KEY, GROUP)
    yield ledger
    await ledger.drain()
    await client.aclose()


@pytest.fixture
async def sweeper(redis_url: str) -> AsyncIterator[OutboxSweeper]:
    redis = create_redis(redis_url)
    yield OutboxSweeper(redis, settings(redis_url), Metrics())
    await redis.aclose()


async def charge(ledger: Ledger) -> str:
    cid = new_charge_id(KEY_ID)
    d = await ledger.authorize(KEY, "/x", 1, "c", charge_id=cid, route="default/eod")
    assert d.reason == "ok"
    return cid


async def charges_never_added(ledger: Ledger, n: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``n`` charges whose XADD never happens (as when the process dies after the script)."""
    with monkeypatch.context() as m:
        m.setattr(ledger, "_send", lambda *a, **k: None)
        return [await charge(ledger) for _ in range(n)]


async def streamed(redis: Any) -> list[UsageEvent]:
    return [UsageEvent.from_fields(f) for _, f in await redis.xrange(USAGE_STREAM_KEY)]


def later(seconds: float) -> int:
    return int((time.time() + seconds) * 1000)


def resent(s: OutboxSweeper) -> float:
    return s.m.registry.get_sample_value("tollgate_notifier_usage_resent_total") or 0.0


def test_the_horizon_is_what_the_group_has_read_less_the_grace() -> None:
    """Nothing unread in the stream: now less the grace; else the last-read entry's time less
    it."""
    assert horizon(10_000, "7000-0", "7000-0", 1000) == 9000
    assert horizon(10_000, "0-0", None, 1000) == 9000  # empty: made, or trimmed to nothing
    assert horizon(10_000, "4000-3", "7000-0", 1000) == 3000
    assert horizon(10_000, "0-0", "7000-0", 1000) == -1000


async def test_the_exporter_removes_what_it_read_from_the_outbox(
    ledger: Ledger, redis_url: str, usage_receiver: UsageReceiver
) -> None:
    """Charges and a refund sent the usual way: once the exporter has read them, the key's
    outbox is empty."""
    ids = [await charge(ledger) for _ in range(20)]
    await ledger.refund(ids[0])
    await ledger.drain()
    assert await ledger.redis.zcard(OUTBOX) == 21
    s = NotifierSettings(
        redis_url=redis_url, usage_export_url=usage_receiver.url, block_ms=50, consumer="x"
    )
    redis = create_redis(redis_url)
    x = Exporter(redis, s, Metrics(), UsageClient(s, redis))
    await x.start()
    try:
        await until(lambda: len(usage_receiver.events) == 21)
        await until(lambda: ledger.redis.zcard(OUTBOX), want=0)
    finally:
        await x.stop()
        await x.client.aclose()
        await redis.aclose()


async def test_the_sweeper_resends_only_past_the_grace_and_once(
    ledger: Ledger, sweeper: OutboxSweeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Charges whose XADD never happened: not re-sent within the grace; past it, each once,
    as the event it was, and out of the outbox."""
    ids = await charges_never_added(ledger, 5, monkeypatch)
    assert await sweeper.sweep() == 0
    assert await sweeper.sweep(later(GRACE_S + 1)) == 5
    events = await streamed(ledger.redis)
    assert sorted(e.id for e in events) == sorted(ids)
    assert {(e.key, e.route, e.credits) for e in events} == {(KEY_ID, "default/eod", 1)}
    assert await ledger.redis.zcard(OUTBOX) == 0
    assert await sweeper.sweep(later(GRACE_S + 1)) == 0
    assert resent(sweeper) == 5


async def test_the_sweeper_leaves_what_waits_unread_in_the_stream(
    ledger: Ledger, sweeper: OutboxSweeper
) -> None:
    """Events XADDed and not yet read (the exporter behind): past the grace they are still
    not re-sent, the group has not read that far."""
    for _ in range(3):
        await charge(ledger)
    await ledger.drain()
    assert await sweeper.sweep(later(GRACE_S + 1)) == 0
    assert len(await streamed(ledger.redis)) == 3


async def test_events_the_streams_bound_dropped_unread_are_resent(
    ledger: Ledger, sweeper: OutboxSweeper
) -> None:
    """Events XADDed, then trimmed before the group read them (the producers' MAXLEN): still in
    their outbox, so past the grace they are added again, each once."""
    ids = [await charge(ledger) for _ in range(4)]
    await ledger.drain()
    await ledger.redis.xtrim(USAGE_STREAM_KEY, maxlen=0, approximate=False)
    assert await sweeper.sweep(later(GRACE_S + 1)) == 4
    assert sorted(e.id for e in await streamed(ledger.redis)) == sorted(ids)


async def test_one_sweeper_at_a_time(
    ledger: Ledger, sweeper: OutboxSweeper, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica holds the lock: this one re-sends nothing; once it is free, it does, and
    leaves the lock free."""
    await charges_never_added(ledger, 2, monkeypatch)
    await ledger.redis.set(LOCK, "sweeper-b", px=60_000)
    assert await sweeper.sweep(later(GRACE_S + 1)) == 0
    assert await ledger.redis.zcard(OUTBOX) == 2
    await ledger.redis.delete(LOCK)
    assert await sweeper.sweep(later(GRACE_S + 1)) == 2
    assert await ledger.redis.exists(LOCK) == 0


async def test_a_large_outbox_is_swept_whole(
    ledger: Ledger, sweeper: OutboxSweeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More entries than a page reads per key: one sweep re-sends all of them."""
    ids = await charges_never_added(ledger, 250, monkeypatch)
    assert await sweeper.sweep(later(GRACE_S + 1)) == 250
    assert sorted(e.id for e in await streamed(ledger.redis)) == sorted(ids)


async def test_lost_events_reach_the_endpoint_through_the_exporters_sweeper(
    ledger: Ledger, redis_url: str, usage_receiver: UsageReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter's own sweeper loop (short grace): every charge whose XADD never happened
    arrives, once, and the metric counts them."""
    ids = await charges_never_added(ledger, 30, monkeypatch)
    s = NotifierSettings(
        redis_url=redis_url,
        usage_export_url=usage_receiver.url,
        block_ms=50,
        consumer="x",
        usage_outbox_interval_seconds=0.1,
        usage_outbox_grace_seconds=0.2,
    )
    redis = create_redis(redis_url)
    x = Exporter(redis, s, Metrics(), UsageClient(s, redis))
    await x.start()
    try:
        await until(lambda: len(usage_receiver.events) >= 30)
        await until(lambda: ledger.redis.zcard(OUTBOX), want=0)
        assert sorted(usage_receiver.ids()) == sorted(ids)
        assert x.m.registry.get_sample_value("tollgate_notifier_usage_resent_total") == 30
    finally:
        await x.stop()
        await x.client.aclose()
        await redis.aclose()


async def until(probe: Callable[[], Any], want: Any = True, limit: float = 15.0) -> None:
    """Poll ``probe`` (plain or async) until it gives ``want`` (True: anything true)."""
    async with asyncio.timeout(limit):
        while True:
            got = probe()
            if asyncio.iscoroutine(got):
                got = await got
            if bool(got) if want is True else got == want:
                return
            await asyncio.sleep(0.02)


async def test_on_a_three_primary_cluster_every_nodes_outboxes_drain(
    redis_cluster: RedisClusterNodes,
    usage_receiver: UsageReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys on every node: the events sent the usual way leave their outboxes once read, and
    those never XADDed come through the exporter's sweeper; all arrive, each once."""
    client = create_redis(redis_cluster.url)
    await ensure_group(client, USAGE_STREAM_KEY, GROUP)
    key_ids = redis_cluster.key_ids_on_every_node()
    for key_id in key_ids:
        raw = f"tg_{key_id}_" + "s" * 43
        await client.hset(
            record_key(key_id, key_hash(raw)), mapping={"id": key_id, "credits": 1000}
        )
        await client.sadd(KEYS_SET, key_id)
    ledger = Ledger(client, QUIET)

    async def charge_each() -> list[str]:
        ids = []
        for key_id in key_ids:
            cid = new_charge_id(key_id)
            d = await ledger.authorize(f"tg_{key_id}_" + "s" * 43, "/x", 1, "c", charge_id=cid)
            assert d.reason == "ok"
            ids.append(cid)
        return ids

    sent = await charge_each()
    await ledger.drain()
    with monkeypatch.context() as m:
        m.setattr(ledger, "_send", lambda *a, **k: None)
        lost = await charge_each()
    s = NotifierSettings(
        redis_url=redis_cluster.url,
        usage_export_url=usage_receiver.url,
        block_ms=50,
        consumer="x",
        usage_outbox_interval_seconds=0.1,
        usage_outbox_grace_seconds=0.2,
    )
    redis = create_redis(redis_cluster.url)
    x = Exporter(redis, s, Metrics(), UsageClient(s, redis))
    await x.start()
    try:
        await until(lambda: len(set(usage_receiver.ids())) >= len(sent) + len(lost))
        for key_id in key_ids:
            await until(lambda k=key_id: client.zcard(outbox_key(k)), want=0)
        assert sorted(usage_receiver.ids()) == sorted(sent + lost)
        assert x.m.registry.get_sample_value("tollgate_notifier_usage_resent_total") == len(lost)
    finally:
        await x.stop()
        await x.client.aclose()
        await redis.aclose()
        await ledger.drain()
        await client.aclose()
