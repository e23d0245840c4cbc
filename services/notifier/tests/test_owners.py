"""Owner webhooks: the signature (pure, checked by an independent verifier) and delivery through
the consumer against a real redis-server and a real receiver that verifies it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tollgate_common.contracts.events import STREAM_KEY, Event, EventType, Severity
from tollgate_common.ledger.layout import id_key as key_index_key
from tollgate_common.ledger.layout import legacy_record_key, record_key
from tollgate_common.redis.client import create_redis
from tollgate_notifier.consumer import Consumer
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.notification import Notification
from tollgate_notifier.owners import owner_payload, signature
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.sinks import build_sinks
from tollgate_testkit.receivers import WebhookReceiver, verify_signature

SECRET = "whsec-0123456789abcdef"
Make = Callable[..., Any]


def test_the_signature_verifies_and_a_tampered_body_does_not() -> None:
    """t=...,v1=HMAC-SHA256(secret, "t.body"); another body or secret fails verification."""
    n = Notification(
        id="credits.low|k#1",
        group="g",
        type="credits.low",
        status="firing",
        severity="warning",
        route="default/eod",
        subject="tg_k_…",
        count=1,
        message="low",
        attributes={"key_id": "abcdefgh", "credits": "9"},
    )
    import time

    now = int(time.time())
    body = owner_payload(n, now)
    header = signature(SECRET, now, body)
    assert header.startswith(f"t={now},v1=")
    assert verify_signature(SECRET, header, body)
    assert not verify_signature(SECRET, header, body.replace(b"9", b"99"))
    assert not verify_signature("another-secret-000", header, body)
    assert json.loads(body)["data"] == {
        "key_id": "abcdefgh",
        "credits": 9,
        "route": "default/eod",
        "message": "low",
    }


@pytest.fixture
async def consumer_factory(redis_url: str) -> AsyncIterator[Make]:
    started: list[tuple[Consumer, Any]] = []

    async def make(**overrides: Any) -> Consumer:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "block_ms": 50,
            "claim_idle_ms": 200,
            "backoff_seconds": 0.05,
            "trim_interval_seconds": 3600,
            "consumer": f"o{len(started)}",
        }
        values.update(overrides)
        s = NotifierSettings(**values)
        redis = create_redis(s.redis_url)
        c = Consumer(redis, s, build_sinks(s, redis), Metrics())
        await c.start()
        started.append((c, redis))
        return c

    yield make
    for c, redis in started:
        await c.stop()
        for sink in c.sinks.values():
            await sink.aclose()
        await redis.aclose()


async def owner_key(
    c: Consumer, key_id: str, url: str, secret: str = SECRET, *, moved: bool = True
) -> None:
    """A key with an owner webhook; ``moved=False``: its record still of the untagged layout."""
    await c.redis.set(key_index_key(key_id), f"h-{key_id}")
    name = record_key(key_id, f"h-{key_id}") if moved else legacy_record_key(f"h-{key_id}")
    await c.redis.hset(name, mapping={"id": key_id, "webhook_url": url, "webhook_secret": secret})


def credits_event(kind: EventType, key_id: str) -> Event:
    return Event(
        type=kind,
        route="default/eod",
        subject=f"tg_{key_id}_…",
        message=f"{kind} of {key_id}",
        attributes={"key_id": key_id, "credits": "0"},
    )


async def until(pred: Callable[[], bool], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not pred():  # noqa: ASYNC110 - polling a receiver, nothing to wait on
            await asyncio.sleep(0.05)


@pytest.fixture
def signed_receiver() -> Any:
    receiver = WebhookReceiver(secret=SECRET)
    yield receiver
    receiver.stop()


async def test_a_key_not_moved_yet_reaches_its_owner(
    consumer_factory: Make, signed_receiver: WebhookReceiver
) -> None:
    """A key auth's layout migration has not reached: its webhook is read where it still is."""
    c = await consumer_factory()
    await owner_key(c, "oldowner", signed_receiver.url, moved=False)
    await c.redis.xadd(STREAM_KEY, credits_event(EventType.CREDITS_LOW, "oldowner").to_fields())
    await until(lambda: len(signed_receiver.posts) == 1)
    assert signed_receiver.posts[0]["data"]["key_id"] == "oldowner"


async def test_low_and_exhausted_reach_the_owner_signed(
    consumer_factory: Make, signed_receiver: WebhookReceiver
) -> None:
    """credits.low then credits.exhausted of one key: two verified posts, in order, each with
    its notification id as Idempotency-Key."""
    c = await consumer_factory()
    await owner_key(c, "abcdefgh", signed_receiver.url)
    for kind in (EventType.CREDITS_LOW, EventType.CREDITS_EXHAUSTED):
        await c.redis.xadd(STREAM_KEY, credits_event(kind, "abcdefgh").to_fields())
    await until(lambda: len(signed_receiver.posts) == 2)
    assert [p["type"] for p in signed_receiver.posts] == ["credits.low", "credits.exhausted"]
    assert {p["data"]["key_id"] for p in signed_receiver.posts} == {"abcdefgh"}
    assert signed_receiver.rejected == 0
    assert all(h.get("Idempotency-Key") for h in signed_receiver.headers)


async def test_the_owner_webhook_is_retried(
    consumer_factory: Make, signed_receiver: WebhookReceiver
) -> None:
    """Two 503s, then accepted: delivered once."""
    signed_receiver.fail_next = 2
    c = await consumer_factory()
    await owner_key(c, "abcdefgh", signed_receiver.url)
    await c.redis.xadd(STREAM_KEY, credits_event(EventType.CREDITS_LOW, "abcdefgh").to_fields())
    await until(lambda: len(signed_receiver.posts) == 1)
    await asyncio.sleep(0.3)  # room for a duplicate to show up, if there were one
    assert len(signed_receiver.posts) == 1


async def test_a_key_without_a_webhook_sends_nothing_and_fails_nothing(
    consumer_factory: Make, signed_receiver: WebhookReceiver
) -> None:
    """Only the key with a webhook is posted; the other event is simply acknowledged."""
    c = await consumer_factory()
    await owner_key(c, "withhook", signed_receiver.url)
    for key_id in ("nohook00", "withhook"):
        await c.redis.xadd(STREAM_KEY, credits_event(EventType.CREDITS_LOW, key_id).to_fields())
    await until(lambda: len(signed_receiver.posts) == 1)
    assert signed_receiver.posts[0]["data"]["key_id"] == "withhook"
    assert c.m.dead_letters._value.get() == 0


async def test_a_refused_owner_webhook_is_dead_lettered_without_its_secret(
    consumer_factory: Make, signed_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver that refuses every post: dead letter after max attempts; the secret is in no
    log line and no dead-letter entry."""
    signed_receiver.status = 500
    c = await consumer_factory(max_attempts=2)
    await owner_key(c, "abcdefgh", signed_receiver.url)
    await c.redis.xadd(STREAM_KEY, credits_event(EventType.CREDITS_LOW, "abcdefgh").to_fields())
    await until(lambda: c.m.dead_letters._value.get() == 1)
    dead = await c.redis.xrange(c.s.dead_letter_stream)
    assert SECRET.encode() not in repr(dead).encode()
    assert SECRET not in caplog.text


async def test_refilled_reaches_the_owner_signed(
    consumer_factory: Make, signed_receiver: WebhookReceiver
) -> None:
    """A credits.refilled on the stream (key_id and credits, as the ledger raises it): one
    verified post to the key's owner webhook with the new balance."""
    c = await consumer_factory()
    await owner_key(c, "abcdefgh", signed_receiver.url)
    refilled = Event(
        type=EventType.CREDITS_REFILLED,
        severity=Severity.INFO,
        route="default/eod",
        subject="tg_abcdefgh_…",
        message="key tg_abcdefgh_… refilled to 100 credits",
        attributes={"key_id": "abcdefgh", "credits": "100"},
    )
    await c.redis.xadd(STREAM_KEY, refilled.to_fields())
    await until(lambda: len(signed_receiver.posts) == 1)
    post = signed_receiver.posts[0]
    assert post["type"] == "credits.refilled"
    assert post["data"]["key_id"] == "abcdefgh"
    assert post["data"]["credits"] == 100
    assert signed_receiver.rejected == 0
