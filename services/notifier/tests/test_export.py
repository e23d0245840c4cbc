"""The usage exporter against a real redis-server, the real ledger scripts and a real billing
endpoint (tollgate_testkit.receivers.UsageReceiver)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tollgate_common.contracts.events import USAGE_STREAM_KEY
from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger.apikeys import key_hash, new_charge_id
from tollgate_common.ledger.layout import id_key as key_index_key
from tollgate_common.ledger.layout import record_key
from tollgate_common.redis.client import create_redis
from tollgate_notifier.export import Exporter, UsageClient
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.streams import trim_acknowledged
from tollgate_testkit.receivers import UsageReceiver

KEY = "tg_abcdefgh_" + "s" * 43
Make = Callable[..., Any]
EXPORTED = "tollgate_notifier_usage_exported_total"

# no low-credit events in these tests; charges refundable for a minute
QUIET = LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60)


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Ledger]:
    client = create_redis(redis_url)
    hashed = key_hash(KEY)
    await client.hset(record_key("abcdefgh", hashed), mapping={"id": "abcdefgh", "credits": 10_000})
    await client.set(key_index_key("abcdefgh"), hashed)
    ledger = Ledger(client, QUIET)
    yield ledger
    await ledger.drain()
    await client.aclose()


@pytest.fixture
async def exporter_factory(redis_url: str, usage_receiver: UsageReceiver) -> AsyncIterator[Make]:
    started: list[tuple[Exporter, Any]] = []

    async def make(**overrides: Any) -> Exporter:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "usage_export_url": usage_receiver.url,
            "block_ms": 50,
            "claim_idle_ms": 400,
            "usage_backoff_seconds": 0.02,
            "send_timeout_seconds": 2,
            "trim_interval_seconds": 3600,
            "consumer": f"x{len(started)}",
        }
        values.update(overrides)
        s = NotifierSettings(**values)
        redis = create_redis(s.redis_url)
        x = Exporter(redis, s, Metrics(), UsageClient(s, redis))
        await x.start()
        started.append((x, redis))
        return x

    yield make
    for x, redis in started:
        await x.stop()
        await x.client.aclose()
        await redis.aclose()


async def charge(ledger: Ledger, cost: int = 1) -> str:
    cid = new_charge_id("abcdefgh")
    o = await ledger.authorize(
        KEY,
        "/x",
        cost,
        "10.0.0.1",
        charge_id=cid,
        route="default/eod",
    )
    assert o.reason == "ok"
    return cid


async def until(predicate: Callable[[], Any], limit: float = 10.0) -> None:
    """Poll ``predicate`` (plain or async) until it is true, for at most ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while True:
            got = predicate()
            if asyncio.iscoroutine(got):
                got = await got
            if got:
                return
            await asyncio.sleep(0.02)


def sample(x: Exporter, name: str, **labels: str) -> float:
    value = x.m.registry.get_sample_value(name, labels)
    return value or 0.0


async def pending(x: Exporter) -> int:
    return int((await x.redis.xpending(USAGE_STREAM_KEY, x.s.usage_group))["pending"])


async def test_every_charge_and_refund_arrives(
    ledger: Ledger, exporter_factory: Make, usage_receiver: UsageReceiver
) -> None:
    """50 charges, 10 of them refunded: 60 valid CloudEvents with the expected ids, batched."""
    x = await exporter_factory(usage_batch=7)
    charges = [await charge(ledger) for _ in range(50)]
    for cid in charges[:10]:
        await ledger.refund(cid)
    expected = set(charges) | {f"{c}:refund" for c in charges[:10]}
    await until(lambda: len(usage_receiver.events) >= 60)

    async def settled() -> bool:
        return await pending(x) == 0 and sample(x, EXPORTED, kind="refund") == 10

    await until(settled)
    assert usage_receiver.problems == []
    assert set(usage_receiver.ids()) == expected
    assert sample(x, EXPORTED, kind="charge") == 50
    assert len(usage_receiver.events) == 60  # no duplicates without a crash


async def test_failures_are_retried_until_accepted(
    ledger: Ledger, exporter_factory: Make, usage_receiver: UsageReceiver
) -> None:
    """The endpoint fails three times: the batch arrives after the retries, counted as failures."""
    usage_receiver.fail_next = 3
    x = await exporter_factory()
    cid = await charge(ledger)
    await until(lambda: usage_receiver.ids() == [cid])
    assert usage_receiver.requests == 4
    await until(lambda: sample(x, EXPORTED, kind="charge") == 1)
    assert sample(x, "tollgate_notifier_usage_export_failures_total") == 3


async def test_dead_letter_after_the_last_attempt(
    ledger: Ledger, exporter_factory: Make, usage_receiver: UsageReceiver
) -> None:
    """An endpoint that refuses everything: after max attempts the events are dead-lettered."""
    usage_receiver.status = 400
    x = await exporter_factory(usage_max_attempts=3)
    cids = {await charge(ledger) for _ in range(3)}
    dead = x.s.usage_dead_letter_stream

    async def all_dead() -> bool:
        return int(await x.redis.xlen(dead)) == 3

    await until(all_dead)
    await until(lambda: sample(x, "tollgate_notifier_usage_dead_letters_total") == 3)
    entries = await x.redis.xrange(dead)
    assert {f[b"charge"].decode() for _, f in entries} == cids
    assert {f[b"dead.reason"] for _, f in entries} == {b"usage endpoint answered 400"}
    assert await pending(x) == 0
    assert usage_receiver.events == []


async def test_an_entry_that_is_not_a_usage_event_is_dead_lettered(
    ledger: Ledger, exporter_factory: Make, usage_receiver: UsageReceiver
) -> None:
    """A malformed entry goes to the dead letters at once; the good one next to it is sent."""
    x = await exporter_factory()
    await x.redis.xadd(USAGE_STREAM_KEY, {"kind": "charge", "credits": "many"})
    cid = await charge(ledger)
    await until(lambda: usage_receiver.ids() == [cid])

    async def one_dead() -> bool:
        return int(await x.redis.xlen(x.s.usage_dead_letter_stream)) == 1

    await until(one_dead)


async def test_pending_entries_of_a_dead_replica_are_taken_over(
    ledger: Ledger, exporter_factory: Make, usage_receiver: UsageReceiver
) -> None:
    """Entries another consumer read and never acknowledged are exported once idle."""
    x = await exporter_factory()
    await x.stop()
    cid = await charge(ledger)
    await x.redis.xreadgroup(x.s.usage_group, "crashed", {USAGE_STREAM_KEY: ">"})
    await exporter_factory()
    await until(lambda: usage_receiver.ids() == [cid])


async def test_stripe_meter_events_and_cancellations(
    ledger: Ledger, exporter_factory: Make, usage_receiver: UsageReceiver
) -> None:
    """Stripe: a charge is a meter event for the key's customer, its refund cancels it; a key
    without a customer is dead-lettered (Stripe could not attribute it)."""
    await ledger.redis.hset(record_key("abcdefgh", key_hash(KEY)), "customer", "cus_42")
    x = await exporter_factory(usage_export_format="stripe", usage_export_token="sk_test_x")
    usage_receiver.token = "sk_test_x"
    cid = await charge(ledger, cost=2)
    await ledger.refund(cid)
    await until(lambda: len(usage_receiver.events) == 2)
    assert usage_receiver.problems == []
    event, cancel = usage_receiver.events
    assert (event["payload[stripe_customer_id]"], event["payload[value]"]) == ("cus_42", "2")
    assert (event["identifier"], cancel["cancel[identifier]"]) == (cid, cid)
    await ledger.redis.hdel(record_key("abcdefgh", key_hash(KEY)), "customer")
    x.client._customers.clear()
    await charge(ledger)

    async def one_dead() -> bool:
        return int(await x.redis.xlen(x.s.usage_dead_letter_stream)) == 1

    await until(one_dead)


async def test_trim_keeps_what_is_not_acknowledged(
    ledger: Ledger, exporter_factory: Make, usage_receiver: UsageReceiver
) -> None:
    """Trimming drops exported events only; an unexported one stays."""
    x = await exporter_factory()
    for _ in range(5):
        await charge(ledger)
    await until(lambda: len(usage_receiver.events) == 5)
    await until(lambda: sample(x, EXPORTED, kind="charge") == 5)
    await x.stop()
    cid = await charge(ledger)
    await trim_acknowledged(x.redis, USAGE_STREAM_KEY, x.s.usage_group)
    left = [f[b"charge"].decode() for _, f in await x.redis.xrange(USAGE_STREAM_KEY)]
    # the last delivered entry is kept as MINID's floor, the unexported one after it
    assert len(left) == 2
    assert left[-1] == cid


async def test_an_overrun_is_seen(
    ledger: Ledger, exporter_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream's bound drops events the exporter never read: the group state says so."""
    x = await exporter_factory()
    await x.stop()
    state = await trim_acknowledged(x.redis, USAGE_STREAM_KEY, x.s.usage_group)
    assert not state.overrun
    monkeypatch.setattr("tollgate_common.ledger.ledger.USAGE_STREAM_MAXLEN", 100)
    for _ in range(500):
        await charge(ledger)
    state = await trim_acknowledged(x.redis, USAGE_STREAM_KEY, x.s.usage_group)
    assert state.overrun
