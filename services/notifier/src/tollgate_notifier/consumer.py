"""The stream consumer: read with a consumer group, notify, acknowledge after delivery.

Guarantees (what the tests show):
- An entry is acknowledged only after every sink it routes to has delivered (or it is
  dead-lettered after ``max_attempts``). A crashed replica's pending entries are reclaimed with
  XAUTOCLAIM once idle for ``claim_idle_ms`` and delivered by another replica.
- Several replicas never send one notification twice in normal operation: the decision to notify
  is made atomically in Redis (grouping.lua, idempotent per entry), each (notification, sink)
  delivery takes a lease (SET NX PX) while sending and leaves a "sent" mark after.
- The boundary: a replica killed after a sink accepted a message but before the "sent" mark was
  written causes that one notification to be sent again (at-least-once in that window; SMTP and
  webhooks offer no transaction to close it; webhooks get an Idempotency-Key header).
- Trimming removes only entries older than both the oldest pending entry and the group's
  last-delivered id: nothing unacknowledged is ever dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError

from tollgate_common.contracts.events import STREAM_KEY, Event
from tollgate_common.redis.client import LuaScript, describe
from tollgate_common.redis.commands import Client
from tollgate_common.tracing import Tracing, link_to, maybe_span
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.notification import Notification, group_of
from tollgate_notifier.owners import OWNER_TYPES
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.sinks import Sink, SinkError
from tollgate_notifier.streams import ensure_group, run_loop, stop_loops, trim_acknowledged

log = logging.getLogger(__name__)
P = "tollgate:notifier:"
GROUP_TTL = 7 * 24 * 3600
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


def _report(step: str, exc: Exception) -> None:
    if isinstance(exc, REDIS_ERRORS):
        log.warning("redis error in %s: %s", step, describe(exc))
    else:
        log.error("unexpected error in %s", step, exc_info=exc)


class Consumer:
    def __init__(
        self,
        redis: Client,
        s: NotifierSettings,
        sinks: dict[str, Sink],
        m: Metrics,
        stream: str = STREAM_KEY,
        tracing: Tracing | None = None,
    ) -> None:
        self.tracing = tracing
        self.redis = redis
        self.s = s
        self.sinks = sinks
        self.m = m
        self.stream = stream
        self._grouping = LuaScript((files("tollgate_notifier") / "grouping.lua").read_text())
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.healthy = False

    # --- lifecycle
    async def start(self) -> None:
        await self._ensure_group()
        self._tasks = [
            asyncio.ensure_future(self._loop(self._read_new)),
            asyncio.ensure_future(self._loop(self._reclaim)),
            asyncio.ensure_future(self._loop(self._trim_and_measure)),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop reading; let the batch in hand finish (its entries stay pending otherwise,
        for another replica to reclaim)."""
        await stop_loops(self._stopping, self._tasks, grace)

    async def _ensure_group(self) -> None:
        await ensure_group(self.redis, self.stream, self.s.group)

    async def _loop(self, step: Callable[[], Awaitable[None]]) -> None:
        await run_loop(self, step, self._stopping, _report, self._ensure_group)

    # --- reading
    async def _read_new(self) -> None:
        resp = await self.redis.xreadgroup(
            self.s.group,
            self.s.consumer,
            {self.stream: ">"},
            count=self.s.batch,
            block=self.s.block_ms,
        )
        for _stream, entries in resp or []:
            for entry_id, fields in entries:
                await self.handle(entry_id, fields)

    async def _reclaim(self) -> None:
        """Take over entries left pending by a crashed (or slow) replica, and retry our own."""
        start = "0-0"
        while not self._stopping.is_set():
            resp = await self.redis.xautoclaim(
                self.stream,
                self.s.group,
                self.s.consumer,
                min_idle_time=self.s.claim_idle_ms,
                start_id=start,
                count=self.s.batch,
            )
            start, entries = resp[0], resp[1]
            for entry_id, fields in entries:
                if fields:  # None when the entry was trimmed meanwhile
                    await self.handle(entry_id, fields)
            if start in (b"0-0", "0-0"):
                break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), min(self.s.claim_idle_ms / 2000, 5.0))

    # --- one entry
    async def handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        try:
            event = Event.from_fields(fields)
        except ValueError:
            log.error("entry %s is not an event; dead-lettering it", eid)
            await self._dead_letter(eid, fields, "not an event")
            return
        self.m.events.labels(event.type.value).inc()
        if not await self._due(eid):
            return  # a retry that is not due yet: stays pending
        notification = await self._decide(eid, event)
        try:
            if notification is not None:
                await self._deliver(notification, event)
        except _Busy:
            return  # stays pending; reclaimed and tried again once idle
        except SinkError as exc:
            await self._failed(eid, fields, str(exc))
            return
        await self._ack(eid)

    async def _decide(self, eid: str, event: Event) -> Notification | None:
        group, resolves = group_of(event)
        args = [
            eid,
            time.time(),
            self.s.repeat_interval_seconds,
            "1" if resolves else "0",
            GROUP_TTL,
            event.severity.value,
        ]
        notify, seq, count, status, severity = await self._grouping(
            self.redis, [P + "group:" + group], args
        )
        if not int(notify):
            return None
        status_s = status.decode() if isinstance(status, bytes) else str(status)
        return Notification(
            id=f"{group}#{int(seq)}",
            group=group,
            type=group.split("|", 1)[0],
            status=status_s,
            severity=_s(severity),
            route=event.route,
            subject=event.subject,
            count=int(count),
            message=event.message,
            attributes=event.attributes,
        )

    async def _deliver(self, n: Notification, event: Event) -> None:
        wanted = self.s.routing.get(n.type) or self.s.routing.get(n.severity) or ["log"]
        if n.type in OWNER_TYPES:  # the key's owner hears of it too, whatever the routing
            wanted = [*wanted, "owner"]
        for name in wanted:
            sink = self.sinks.get(name)
            if sink is None:
                continue
            sent_key = f"{P}sent:{n.id}:{name}"
            if await self.redis.exists(sent_key):
                continue
            lease_ms = int(self.s.send_timeout_seconds * 1000) + 1000
            lease = await self.redis.set(
                f"{P}lease:{n.id}:{name}", self.s.consumer, nx=True, px=lease_ms
            )
            if not lease:  # another replica is sending it, or crashed while sending: wait for
                raise _Busy(name)  # its lease to end; this is not a failed attempt
            try:
                # linked to the trace of the request that produced the event, when it has one
                with maybe_span(
                    self.tracing,
                    f"deliver {name}",
                    {
                        "tollgate.sink": name,
                        "tollgate.notification": n.id,
                        "tollgate.route": n.route,
                    },
                    [link_to(event.traceparent, event.tracestate)],
                    SpanKind.PRODUCER,
                ):
                    async with asyncio.timeout(self.s.send_timeout_seconds):
                        await sink.send(n)
            except Exception as exc:  # a sink bug is a failed delivery, never a dead consumer
                self.m.failures.labels(name).inc()
                await self.redis.delete(f"{P}lease:{n.id}:{name}")
                raise SinkError(f"{name}: {exc or type(exc).__name__}") from exc
            await self.redis.set(sent_key, 1, ex=GROUP_TTL)
            await self.redis.delete(f"{P}lease:{n.id}:{name}")
            self.m.deliveries.labels(name, n.status).inc()

    # --- retries and dead letters
    async def _due(self, eid: str) -> bool:
        raw = await self.redis.hget(P + "attempts", eid)
        if raw is None:
            return True
        _, next_at = raw.decode().split("|")
        return time.time() >= float(next_at)

    async def _failed(self, eid: str, fields: dict[bytes, bytes], why: str) -> None:
        raw = await self.redis.hget(P + "attempts", eid)
        attempts = int(raw.decode().split("|")[0]) + 1 if raw else 1
        if attempts >= self.s.max_attempts:
            log.error("entry %s dead-lettered after %d attempts: %s", eid, attempts, why)
            await self._dead_letter(eid, fields, why)
            return
        delay = self.s.backoff_seconds * 2 ** (attempts - 1)
        await self.redis.hset(P + "attempts", eid, f"{attempts}|{time.time() + delay}")
        log.warning(
            "delivery of %s failed (attempt %d, retry in %.1fs): %s", eid, attempts, delay, why
        )

    async def _dead_letter(self, eid: str, fields: dict[bytes, bytes], why: str) -> None:
        dead = dict(fields)
        dead[b"dead.entry"] = eid.encode()
        dead[b"dead.reason"] = why.encode()
        await self.redis.xadd(self.s.dead_letter_stream, dead)
        self.m.dead_letters.inc()
        await self._ack(eid)

    async def _ack(self, eid: str) -> None:
        """Acknowledge, then forget the entry's attempts: the stream and the attempts hash are on
        different slots of a Redis Cluster (issue 13), so two steps, in this order: a crash
        between leaves a stale attempts field of an entry never read again, never an entry
        retried from zero attempts."""
        await self.redis.xack(self.stream, self.s.group, eid)
        await self.redis.hdel(P + "attempts", eid)

    # --- housekeeping
    async def trim(self) -> int:
        """Drop entries every consumer of the group has acknowledged; returns how many."""
        state = await trim_acknowledged(self.redis, self.stream, self.s.group)
        self.m.lag.set(state.lag)
        self.m.pending.set(state.pending)
        return state.removed

    async def _trim_and_measure(self) -> None:
        await self.trim()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.s.trim_interval_seconds)


class _Busy(Exception):
    """A (notification, sink) delivery is leased by someone else."""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
