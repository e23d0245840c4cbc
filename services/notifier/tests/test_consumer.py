"""The consumer against a real redis-server and real SMTP/webhook receivers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tollgate_common.contracts.events import STREAM_KEY, Event, EventType, Severity
from tollgate_common.redis.client import create_redis
from tollgate_common.tracing import Tracing
from tollgate_notifier.consumer import Consumer
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.sinks import build_sinks
from tollgate_testkit.receivers import SmtpServer, WebhookReceiver

Make = Callable[..., Any]


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
            "consumer": f"c{len(started)}",
        }
        values.update(overrides)
        s = NotifierSettings(**values)
        redis = create_redis(s.redis_url)
        c = Consumer(redis, s, build_sinks(s), Metrics())
        await c.start()
        started.append((c, redis))
        return c

    yield make
    for c, redis in started:
        await c.stop()
        for sink in c.sinks.values():
            await sink.aclose()
        await redis.aclose()


def failed(route: str = "ns/eod", n: int = 1) -> list[Event]:
    return [
        Event(
            type=EventType.UPSTREAM_FAILED,
            severity=Severity.CRITICAL,
            route=route,
            message=f"{route} down",
        )
        for _ in range(n)
    ]


async def append(c: Consumer, events: list[Event]) -> None:
    # In pipelines of 500: one of 10,000 XADDs outlasts the client's 2 s socket timeout on a
    # loaded 2-core machine, and the test would fail on its own set-up.
    for start in range(0, len(events), 500):
        async with c.redis.pipeline(transaction=False) as pipe:
            for e in events[start : start + 500]:
                pipe.xadd(STREAM_KEY, e.to_fields())
            await pipe.execute()


async def drained(c: Consumer, limit: float = 30.0) -> None:
    """Wait until every entry was read and acknowledged by the group."""
    async with asyncio.timeout(limit):
        while True:
            groups = await c.redis.xinfo_groups(STREAM_KEY)
            pending = (await c.redis.xpending(STREAM_KEY, c.s.group))["pending"]
            if groups and int(groups[0]["lag"] or 0) == 0 and pending == 0:
                return
            await asyncio.sleep(0.05)


async def until(pred: Callable[[], bool], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not pred():  # noqa: ASYNC110 - polling a metric, nothing to wait on
            await asyncio.sleep(0.05)


def smtp_settings(smtp: SmtpServer) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_to": ["dev@example.com"]}


@pytest.mark.timeout(240)
async def test_storm_sends_one_email(consumer_factory: Make, smtp_server: SmtpServer) -> None:
    """10,000 identical failure events within the repeat interval: exactly one email.

    Bound: one notification per alert group per repeat interval per sink, i.e.
    1 + floor(storm duration / repeat_interval) emails; here the storm is far shorter.
    """
    c = await consumer_factory(**smtp_settings(smtp_server), batch=500)
    await append(c, failed(n=10_000))
    await drained(c, limit=180)  # a hang guard, not a timing: 10,000 entries on a loaded machine
    assert smtp_server.subjects() == ["[CRITICAL] upstream.failed on ns/eod"]


async def test_recovery_sends_resolved(consumer_factory: Make, smtp_server: SmtpServer) -> None:
    """A failure then a recovery: a firing email and a resolved email."""
    c = await consumer_factory(**smtp_settings(smtp_server))
    await append(c, failed(n=3))
    await append(c, [Event(type=EventType.ROUTE_RECOVERED, route="ns/eod", message="back")])
    await drained(c)
    assert smtp_server.subjects() == [
        "[CRITICAL] upstream.failed on ns/eod",
        "[RESOLVED] upstream.failed on ns/eod",
    ]


async def test_recovery_without_failure_is_silent(
    consumer_factory: Make, smtp_server: SmtpServer
) -> None:
    """A recovery of a route that never fired sends nothing."""
    c = await consumer_factory(**smtp_settings(smtp_server))
    await append(c, [Event(type=EventType.ROUTE_RECOVERED, route="ns/x")])
    await drained(c)
    assert smtp_server.messages == []


async def test_repeat_interval_notifies_again(
    consumer_factory: Make, webhook_receiver: WebhookReceiver
) -> None:
    """A group still firing after the repeat interval is notified again, with the count."""
    c = await consumer_factory(webhook_url=webhook_receiver.url, repeat_interval_seconds=0.3)
    await append(c, failed(n=5))
    await drained(c)
    await asyncio.sleep(0.35)
    await append(c, failed(n=1))
    await drained(c)
    assert [p["status"] for p in webhook_receiver.posts] == ["firing", "firing"]
    assert webhook_receiver.posts[1]["count"] == 5


async def test_down_sink_is_retried_then_dead_lettered(
    consumer_factory: Make, webhook_receiver: WebhookReceiver
) -> None:
    """A webhook answering 500 is retried max_attempts times, then the entry is dead-lettered."""
    webhook_receiver.status = 500
    c = await consumer_factory(webhook_url=webhook_receiver.url, max_attempts=3)
    await append(c, failed())
    await until(lambda: c.m.dead_letters._value.get() == 1)
    dead = await c.redis.xrange(c.s.dead_letter_stream)
    assert len(dead) == 1
    assert b"webhook" in dead[0][1][b"dead.reason"]
    assert c.m.failures.labels("webhook")._value.get() == 3
    assert (await c.redis.xpending(STREAM_KEY, c.s.group))["pending"] == 0


async def test_sink_that_recovers_delivers_once(
    consumer_factory: Make, webhook_receiver: WebhookReceiver
) -> None:
    """A webhook that fails twice then works gets the notification exactly once."""
    webhook_receiver.status = 503
    c = await consumer_factory(webhook_url=webhook_receiver.url, max_attempts=10)
    await append(c, failed())
    await until(lambda: c.m.failures.labels("webhook")._value.get() >= 2)
    webhook_receiver.status = 200
    await drained(c)
    assert len(webhook_receiver.posts) == 1


async def test_slack_format(consumer_factory: Make, webhook_receiver: WebhookReceiver) -> None:
    """The slack format posts {"text": ...}."""
    c = await consumer_factory(webhook_url=webhook_receiver.url, webhook_format="slack")
    await append(c, failed())
    await drained(c)
    assert webhook_receiver.posts[0]["text"].startswith("[CRITICAL] upstream.failed on ns/eod")


async def test_trim_never_drops_unacknowledged(consumer_factory: Make, redis_url: str) -> None:
    """Trimming removes acknowledged entries only; a pending entry survives."""
    c = await consumer_factory()
    await c.stop()  # drive it by hand
    r = c.redis
    await append(c, failed(n=3))
    # Another consumer reads one entry and never acknowledges it.
    [(_, [(stuck_id, _)])] = await r.xreadgroup(c.s.group, "other", {STREAM_KEY: ">"}, count=1)
    await append(c, failed(route="ns/b", n=5))
    resp = await r.xreadgroup(c.s.group, "c-hand", {STREAM_KEY: ">"}, count=100)
    for _, entries in resp:
        for entry_id, _ in entries:
            await r.xack(STREAM_KEY, c.s.group, entry_id)
    removed = await c.trim()
    ids = [e[0] for e in await r.xrange(STREAM_KEY)]
    assert stuck_id in ids
    assert removed == 0  # the stuck entry is the oldest: nothing before it may go
    await r.xack(STREAM_KEY, c.s.group, stuck_id)
    assert await c.trim() == 7
    assert await r.xlen(STREAM_KEY) == 1  # MINID keeps the floor entry itself


async def test_garbage_entry_is_dead_lettered(consumer_factory: Make) -> None:
    """An entry that is not an event does not block the stream."""
    c = await consumer_factory()
    await c.redis.xadd(STREAM_KEY, {"nonsense": "1"})
    await until(lambda: c.m.dead_letters._value.get() == 1)


async def test_routing_by_type_beats_severity(
    consumer_factory: Make, smtp_server: SmtpServer, webhook_receiver: WebhookReceiver
) -> None:
    """A routing entry for an event type overrides the severity's sinks."""
    routing = {"critical": ["email", "webhook"], "upstream.failed": ["webhook"]}
    c = await consumer_factory(
        **smtp_settings(smtp_server), webhook_url=webhook_receiver.url, routing=routing
    )
    await append(c, failed())
    await append(
        c,
        [
            Event(
                type=EventType.CREDITS_EXHAUSTED,
                severity=Severity.CRITICAL,
                subject="tg_x_…",
                message="out",
            )
        ],
    )
    await drained(c)
    assert [p["type"] for p in webhook_receiver.posts] == ["upstream.failed", "credits.exhausted"]
    assert smtp_server.subjects() == ["[CRITICAL] credits.exhausted on tg_x_…"]


async def test_a_crashing_sink_is_a_failed_delivery(
    consumer_factory: Make, webhook_receiver: WebhookReceiver
) -> None:
    """A sink raising something unexpected is retried and dead-lettered; the consumer lives on."""
    c = await consumer_factory(webhook_url=webhook_receiver.url, max_attempts=2)

    async def boom(n: object) -> None:
        raise RuntimeError("sink bug")

    c.sinks["webhook"].send = boom  # type: ignore[method-assign]
    await append(c, failed())
    await until(lambda: c.m.dead_letters._value.get() == 1)
    del c.sinks["webhook"]
    await append(c, failed(route="ns/other"))
    await drained(c)


async def test_delivery_span_links_to_the_failed_requests_trace(
    redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """An upstream.failed event carrying a traceparent: the webhook delivery's span links to
    that trace (tracing on, spans in memory)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider.get_tracer("t"), provider)
    s = NotifierSettings(
        redis_url=redis_url, block_ms=50, webhook_url=webhook_receiver.url, consumer="traced"
    )
    redis = create_redis(s.redis_url)
    c = Consumer(redis, s, build_sinks(s), Metrics(), tracing=tracing)
    await c.start()
    try:
        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        event = Event(
            type=EventType.UPSTREAM_FAILED,
            severity=Severity.CRITICAL,
            route="ns/traced",
            message="down",
            traceparent=tp,
        )
        await append(c, [event])
        await until(lambda: len(webhook_receiver.posts) == 1)
        await until(
            lambda: any(sp.name == "deliver webhook" for sp in exporter.get_finished_spans())
        )
    finally:
        await c.stop()
        for sink in c.sinks.values():
            await sink.aclose()
        await redis.aclose()
    (span,) = [sp for sp in exporter.get_finished_spans() if sp.name == "deliver webhook"]
    assert [link.context.trace_id for link in span.links] == [0x0AF7651916CD43DD8448EB211C80319C]
    assert (span.attributes or {})["tollgate.route"] == "ns/traced"
