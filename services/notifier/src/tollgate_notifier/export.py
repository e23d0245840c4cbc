"""The usage exporter: the usage stream (one event per charge and refund, written by the ledger's
Lua) to a billing endpoint, at least once.

It runs in the notifier's process, beside the alert consumer, as tasks of its own with a consumer
group of its own: one Deployment, one settings class and one /metrics for both, and scaling the
notifier scales both; the two loops share nothing but the Redis pool, so a slow billing endpoint
never delays an alert, nor the reverse. With no ``usage_export_url`` it does not start.

Guarantees (what the tests show):
- An entry is acknowledged only after the endpoint accepted it (2xx), or after it was
  dead-lettered (``usage_max_attempts`` failed attempts, or not a usage event). Every receiver
  gets each event's charge id as its id and can deduplicate by it: delivery is at least once.
- After a crash the entries it had read and not acknowledged are reclaimed (XAUTOCLAIM, once idle
  ``claim_idle_ms``) by any replica, or re-read by a restarted one under the same name; a batch
  being retried is re-claimed before each attempt so no other replica takes it meanwhile.
- The stream is trimmed to what the group acknowledged; the producers' bound
  (``events.USAGE_STREAM_MAXLEN``) is the only way an event in the stream is lost unexported,
  and tollgate_notifier_usage_overrun shows it.
- An event that never reached the stream (the ledger's XADD lost or refused) stays in its key's
  outbox (tollgate_common/ledger/outbox.py): each event read here is removed from it, and the
  outbox sweeper (outbox.py, a loop of its own) adds what stays longer to the stream again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tollgate_common.contracts.events import USAGE_STREAM_KEY, USAGE_STREAM_MAXLEN, UsageEvent
from tollgate_common.ledger import outbox
from tollgate_common.ledger.layout import outbox_key
from tollgate_common.redis.client import describe
from tollgate_common.redis.commands import Client
from tollgate_notifier.keyrecords import key_fields
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.outbox import OutboxSweeper
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.streams import ensure_group, run_loop, stop_loops, trim_acknowledged
from tollgate_notifier.usage import OPENMETER_PATH, openmeter_body, retry_delay, stripe_request

log = logging.getLogger(__name__)


def _report(step: str, exc: Exception) -> None:
    log.warning("usage export: error in %s: %s", step, describe(exc))


Entry = tuple[str, UsageEvent, dict[bytes, bytes]]
CUSTOMER_TTL = 60.0  # how long a key's billing customer is cached (it rarely changes)


class ExportError(Exception):
    """An attempt failed; ``delivered`` events at the head of the batch were accepted first."""

    def __init__(self, why: str, delivered: int = 0) -> None:
        super().__init__(why)
        self.delivered = delivered


class UsageClient:
    """Sends usage events to the endpoint in its format. The token never reaches a log line."""

    def __init__(self, s: NotifierSettings, redis: Client) -> None:
        self.s = s
        self.redis = redis
        headers = {"Authorization": f"Bearer {s.usage_export_token}"}
        self.http = httpx.AsyncClient(
            base_url=s.usage_export_url.rstrip("/"),
            timeout=s.send_timeout_seconds,
            headers=headers if s.usage_export_token else {},
        )
        self._customers: dict[str, tuple[float, str]] = {}

    async def send(self, events: list[UsageEvent]) -> None:
        if self.s.usage_export_format == "stripe":
            for i, e in enumerate(events):  # Stripe takes one meter event per call
                try:
                    await self._send_stripe(e)
                except ExportError as exc:
                    raise ExportError(str(exc), delivered=i) from exc
            return
        ctype, body = openmeter_body(events, self.s.usage_source, self.s.usage_event_type)
        await self._post(OPENMETER_PATH, content=body, headers={"Content-Type": ctype})

    async def _send_stripe(self, e: UsageEvent) -> None:
        customer = await self.customer(e.key)
        path, form = stripe_request(e, self.s.usage_stripe_event_name, customer)
        await self._post(path, data=form, headers={"Idempotency-Key": e.id})

    async def _post(self, path: str, **kwargs: Any) -> None:
        try:
            r = await self.http.post(path, **kwargs)
        except httpx.HTTPError as exc:
            raise ExportError(f"usage endpoint: {type(exc).__name__}") from exc
        if not r.is_success:
            raise ExportError(f"usage endpoint answered {r.status_code}")

    async def customer(self, key_id: str) -> str:
        """The billing customer of a key (its ``customer`` field), cached for a minute."""
        now = time.monotonic()
        hit = self._customers.get(key_id)
        if hit and hit[0] > now:
            return hit[1]
        (raw,) = await key_fields(self.redis, key_id, "customer")
        value = _s(raw) if raw else ""
        if len(self._customers) > 10_000:
            self._customers.clear()
        self._customers[key_id] = (now + CUSTOMER_TTL, value)
        return value

    async def aclose(self) -> None:
        await self.http.aclose()


class Exporter:
    def __init__(
        self,
        redis: Client,
        s: NotifierSettings,
        m: Metrics,
        client: UsageClient,
        stream: str = USAGE_STREAM_KEY,
    ) -> None:
        self.redis = redis
        self.s = s
        self.m = m
        self.client = client
        self.stream = stream
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._own_pending = True  # first re-read what this consumer name left unacknowledged
        self._next_claim = 0.0
        self.outbox = OutboxSweeper(redis, s, m, stream)
        self.healthy = False

    # --- lifecycle
    async def start(self) -> None:
        await ensure_group(self.redis, self.stream, self.s.usage_group)
        self._tasks = [
            asyncio.ensure_future(self._loop(self._step)),
            asyncio.ensure_future(self._loop(self._trim_and_measure)),
            asyncio.ensure_future(self._loop(self._sweep_outbox)),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop reading; the batch in hand finishes its attempt (else stays pending)."""
        await stop_loops(self._stopping, self._tasks, grace)

    async def _loop(self, step: Callable[[], Awaitable[None]]) -> None:
        await run_loop(self, step, self._stopping, _report, self._ensure_group)

    async def _ensure_group(self) -> None:
        await ensure_group(self.redis, self.stream, self.s.usage_group)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # --- reading
    async def _step(self) -> None:
        entries = await self._claim_abandoned()
        if not entries:
            entries = await self._read("0" if self._own_pending else ">")
            if self._own_pending and not entries:
                self._own_pending = False
        if entries:
            await self.export(entries)

    async def _read(self, start: str) -> list[tuple[Any, Any]]:
        resp = await self.redis.xreadgroup(
            self.s.usage_group,
            self.s.consumer,
            {self.stream: start},
            count=self.s.usage_batch,
            block=None if start == "0" else self.s.block_ms,
        )
        return [entry for _stream, entries in resp or [] for entry in entries]

    async def _claim_abandoned(self) -> list[tuple[Any, Any]]:
        """Entries a crashed replica read and never acknowledged (idle ``claim_idle_ms``)."""
        now = time.monotonic()
        if now < self._next_claim:
            return []
        resp = await self.redis.xautoclaim(
            self.stream,
            self.s.usage_group,
            self.s.consumer,
            min_idle_time=self.s.claim_idle_ms,
            start_id="0-0",
            count=self.s.usage_batch,
        )
        entries = list(resp[1])
        if not entries:  # nothing (more) to take over: look again in half an idle period
            self._next_claim = now + self.s.claim_idle_ms / 2000
        return entries

    # --- one batch
    async def export(self, raw: list[tuple[Any, Any]]) -> None:
        batch: list[Entry] = []
        for entry_id, fields in raw:
            eid = _s(entry_id)
            if not fields:  # trimmed after it was read: nothing left to send
                await self._ack([eid])
                continue
            try:
                batch.append((eid, UsageEvent.from_fields(fields), fields))
            except ValueError:
                await self._dead_letter([(eid, fields)], "not a usage event", 0)
        await self._unlist(batch)
        if self.s.usage_export_format == "stripe":
            batch = await self._drop_uncustomered(batch)
        attempt = 0
        while batch:
            attempt += 1
            try:
                async with asyncio.timeout(self.s.send_timeout_seconds * len(batch) + 1):
                    await self.client.send([e for _, e, _ in batch])
            except (ExportError, TimeoutError) as exc:
                delivered = exc.delivered if isinstance(exc, ExportError) else 0
                await self._accepted(batch[:delivered])
                batch = batch[delivered:]
                self.m.usage_failures.inc()
                why = str(exc) or type(exc).__name__
                if attempt >= self.s.usage_max_attempts:
                    await self._dead_letter([(i, f) for i, _, f in batch], why, attempt)
                    return
                delay = retry_delay(attempt, self.s.usage_backoff_seconds, self._backoff_cap())
                log.warning(
                    "usage export of %d events failed (attempt %d, retry in %.1fs): %s",
                    len(batch),
                    attempt,
                    delay,
                    why,
                )
                await self._sleep(delay)
                if self._stopping.is_set():
                    return  # left pending: a replica (or this one, restarted) takes it over
                batch = await self._keep_claimed(batch)
                continue
            await self._accepted(batch)
            return

    async def _unlist(self, batch: list[Entry]) -> None:
        """Remove the events read from their keys' outboxes: the group's pending list holds
        them now. One ZREM per event on its key's slot, pipelined; a failure only means the
        outbox sweeper adds those events once more (the receiver drops them by id)."""
        if not batch:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, e, fields in batch:
                    pipe.zrem(outbox_key(e.key), outbox.member(fields))
                await pipe.execute()
        except Exception as exc:
            _report("outbox removal", exc)

    def _backoff_cap(self) -> float:
        # Waiting longer than claim_idle_ms would make the batch look abandoned.
        return min(self.s.usage_backoff_max_seconds, self.s.claim_idle_ms / 2000)

    async def _keep_claimed(self, batch: list[Entry]) -> list[Entry]:
        """Reset the batch's idle time (XCLAIM JUSTID); an entry someone else acknowledged
        meanwhile is no longer pending and drops out."""
        ids = [eid for eid, _, _ in batch]
        kept = await self.redis.xclaim(
            self.stream, self.s.usage_group, self.s.consumer, 0, ids, justid=True
        )
        still = {_s(k) for k in kept}
        return [entry for entry in batch if entry[0] in still]

    async def _drop_uncustomered(self, batch: list[Entry]) -> list[Entry]:
        """Stripe needs a customer per charge: a key without one is dead-lettered at once (its
        refunds too: they would cancel a meter event Stripe never got)."""
        keep: list[Entry] = []
        for entry in batch:
            if not await self.client.customer(entry[1].key):
                await self._dead_letter([(entry[0], entry[2])], "key has no customer", 0)
            else:
                keep.append(entry)
        return keep

    async def _accepted(self, batch: list[Entry]) -> None:
        if not batch:
            return
        await self._ack([eid for eid, _, _ in batch])
        for _, e, _ in batch:
            self.m.usage_exported.labels(e.kind.value).inc()

    async def _dead_letter(
        self, entries: list[tuple[str, dict[bytes, bytes]]], why: str, attempts: int
    ) -> None:
        log.error(
            "%d usage events dead-lettered after %d attempts: %s", len(entries), attempts, why
        )
        # The dead-letter stream and the usage stream are on different slots of a Redis Cluster
        # (issue 13): no MULTI over both. Dead letters first, then the acknowledgements: a crash
        # between may dead-letter an entry twice, never lose one.
        async with self.redis.pipeline(transaction=False) as pipe:
            for eid, fields in entries:
                dead = {**fields, b"dead.entry": eid.encode(), b"dead.reason": why.encode()}
                # bounded like the usage stream: an endpoint refusing everything for days
                # cannot fill Redis either
                pipe.xadd(
                    self.s.usage_dead_letter_stream,
                    dead,
                    maxlen=USAGE_STREAM_MAXLEN,
                    approximate=True,
                )
            await pipe.execute()
        await self._ack([eid for eid, _ in entries])
        self.m.usage_dead_letters.inc(len(entries))

    async def _ack(self, ids: list[str]) -> None:
        await self.redis.xack(self.stream, self.s.usage_group, *ids)

    # --- housekeeping
    async def _sweep_outbox(self) -> None:
        await self.outbox.sweep()
        await self._sleep(self.s.usage_outbox_interval_seconds)

    async def _trim_and_measure(self) -> None:
        state = await trim_acknowledged(self.redis, self.stream, self.s.usage_group)
        self.m.usage_lag.set(state.lag)
        self.m.usage_pending.set(state.pending)
        self.m.usage_overrun.set(1 if state.overrun else 0)
        if state.overrun:
            log.error("usage stream trimmed at its bound before export: events were lost")
        await self._sleep(self.s.trim_interval_seconds)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
