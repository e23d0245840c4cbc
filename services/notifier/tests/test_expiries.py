"""The expiry sweeper: which keys are due (pure), and sweeps against a real redis-server: one
key.expiring per key and expiry however many sweepers run, none outside the window, none for a
revoked key, again for a moved expiry; through the consumer to a real receiver, signed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tollgate_common.contracts.events import STREAM_KEY, Event, EventType
from tollgate_common.ledger.layout import EXPIRIES, id_key, record_key
from tollgate_common.redis.client import create_redis
from tollgate_notifier.consumer import Consumer
from tollgate_notifier.expiries import ExpirySweeper, Record, due
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.sinks import build_sinks
from tollgate_testkit.receivers import WebhookReceiver

SECRET = "whsec-0123456789abcdef"
HOUR_MS = 3_600_000
NOW = 1_800_000_000_000


def test_due_keeps_live_keys_whose_record_agrees() -> None:
    """Due: the record exists, is not revoked, says the same expiry and it is still ahead."""
    indexed = [("live", NOW + 5), ("gone", NOW + 5), ("rev", NOW + 5), ("moved", NOW + 5)]
    indexed.append(("past", NOW))
    records = [
        Record(NOW + 5, False),
        None,
        Record(NOW + 5, True),
        Record(NOW + 9 * HOUR_MS, False),
        Record(NOW, False),
    ]
    assert due(indexed, records, NOW) == [("live", NOW + 5)]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


def settings(redis_url: str, **overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "key_expiring_before_seconds": 3600,
        "expiry_sweep_interval_seconds": 0.05,
        "block_ms": 50,
        "claim_idle_ms": 200,
        "backoff_seconds": 0.05,
        "trim_interval_seconds": 3600,
    }
    values.update(overrides)
    return NotifierSettings(**values)


async def a_key(
    redis: Any, key_id: str, expires_ms: int, revoked: bool = False, url: str = ""
) -> None:
    """A key record as auth writes it, and its expiry index entry."""
    await redis.set(id_key(key_id), f"h-{key_id}")
    fields = {"id": key_id, "expires_at": expires_ms, "revoked": int(revoked)}
    if url:
        fields.update(webhook_url=url, webhook_secret=SECRET)
    await redis.hset(record_key(key_id, f"h-{key_id}"), mapping=fields)
    await redis.zadd(EXPIRIES, {key_id: expires_ms})


async def warnings(redis: Any) -> list[Event]:
    events = [Event.from_fields(f) for _, f in await redis.xrange(STREAM_KEY)]
    return [e for e in events if e.type is EventType.KEY_EXPIRING]


async def test_two_sweepers_warn_once_inside_the_window_only(redis: Any, redis_url: str) -> None:
    """Two sweepers, each sweeping three times: the key expiring in 30 min is warned exactly once
    (with its expiry), the one in 2 h (window 1 h), the revoked one and the expired one never."""
    now = int(time.time() * 1000)
    await a_key(redis, "soon0000", now + HOUR_MS // 2)
    await a_key(redis, "later000", now + 2 * HOUR_MS)
    await a_key(redis, "revoked0", now + HOUR_MS // 2, revoked=True)
    await a_key(redis, "expired0", now - 1000)
    a, b = ExpirySweeper(redis, settings(redis_url)), ExpirySweeper(redis, settings(redis_url))
    for _ in range(3):
        sent = await asyncio.gather(a.sweep(), b.sweep())
        assert sum(sent) <= 1
    found = await warnings(redis)
    assert [e.attributes for e in found] == [
        {"key_id": "soon0000", "expires_at": str((now + HOUR_MS // 2) // 1000)}
    ]


async def test_a_moved_expiry_warns_again(redis: Any, redis_url: str) -> None:
    """The same key, its expiry moved (auth re-indexes it): a second warning, for the new one."""
    now = int(time.time() * 1000)
    sweeper = ExpirySweeper(redis, settings(redis_url))
    await a_key(redis, "moving00", now + 600_000)
    assert await sweeper.sweep() == 1
    await a_key(redis, "moving00", now + 1_200_000)
    assert await sweeper.sweep() == 1
    assert await sweeper.sweep() == 0
    found = [e.attributes["expires_at"] for e in await warnings(redis)]
    assert found == [str((now + 600_000) // 1000), str((now + 1_200_000) // 1000)]


async def test_the_sweeper_pages_through_many_keys(redis: Any, redis_url: str) -> None:
    """More due keys than one page: every one is warned once."""
    now = int(time.time() * 1000)
    for i in range(1203):
        await a_key(redis, f"many{i:04d}", now + 60_000 + i)
    assert await ExpirySweeper(redis, settings(redis_url)).sweep() == 1203
    assert len({e.attributes["key_id"] for e in await warnings(redis)}) == 1203


async def until(pred: Callable[[], bool], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not pred():  # noqa: ASYNC110 - polling a receiver, nothing to wait on
            await asyncio.sleep(0.05)


async def test_the_owner_hears_key_expiring_signed(redis: Any, redis_url: str) -> None:
    """Sweeper and consumer running: the key's owner webhook gets one signed key.expiring with
    the key id and the expiry (Unix seconds)."""
    receiver = WebhookReceiver(secret=SECRET)
    s = settings(redis_url, consumer="x0")
    consumer = Consumer(redis, s, build_sinks(s, redis), Metrics())
    sweeper = ExpirySweeper(redis, s)
    expires = int(time.time() * 1000) + 600_000
    await a_key(redis, "owned000", expires, url=receiver.url)
    await consumer.start()
    await sweeper.start()
    try:
        await until(lambda: len(receiver.posts) == 1)
        await asyncio.sleep(0.3)  # several more sweeps: room for a duplicate, if there were one
        assert len(receiver.posts) == 1
        post = receiver.posts[0]
        assert post["type"] == "key.expiring"
        assert post["data"]["key_id"] == "owned000"
        assert post["data"]["expires_at"] == expires // 1000
        assert receiver.rejected == 0
    finally:
        await sweeper.stop()
        await consumer.stop()
        for sink in consumer.sinks.values():
            await sink.aclose()
        receiver.stop()
