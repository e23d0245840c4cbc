"""Refunds that land: every charge the gateway gives up is retried until the ledger takes it.

Issue 11, "every debit ends as a served answer or a refund". A refund is owed when a charged
request was not served (upstreams failed, no data, deadline, client gone, shutdown) and when an
authorize's outcome is unknown (auth or Redis died after the debit but before the answer: the
gateway chose the charge id before it asked, and the ledger makes a refund of a charge that never
happened a no-op that stays one; tollgate_common/ledger).

Design: refunds are idempotent by charge id, so any number of tries by any number of gateways is
safe. Each is tried at once, off the response path; one that does not land is

1. kept in memory and retried with exponential back-off (0.1 s doubling to 5 s) until it lands;
2. parked in Redis (a sorted set, ``PENDING_KEY``: charge id -> time parked), whenever Redis is
   reachable, so it outlives this process: every gateway sweeps parked refunds on start and every
   ``refund_sweep_seconds`` (those older than that, so a live owner's fresh ones are not doubled),
   and removes an entry once its refund landed. Redis rather than a local file first, because any
   gateway can land a parked refund, also after this pod is gone for good;
3. spooled to a local file (spool.py) when Redis cannot take it either, which is exactly when the
   ledger is down too: this gateway lands it after its own restart.

On SIGTERM the queue gets the shutdown grace to land what it holds; what is left stays parked (or
spooled).

Tracing on, a refund joins the trace of the request that owed it: ``submit`` runs in the request
and keeps its trace context, and each try runs in a ``refund`` span of that trace (tracing.py),
under which the call to auth carries it on. A swept or spooled refund has no request here and
runs untraced.

Limits (stated in the README too): a refund must land within ``CHARGE_TTL_SECONDS`` (the charge
record expires); a spooled refund is lost with its pod (the chart keeps the spool on the pod's
emptyDir); and a SIGKILL of the gateway loses the refunds of requests in flight at that moment
(charged, never answered: nothing has recorded yet that they are owed). Closing that last window
needs a settle record per served request, i.e. one more Redis write per success; the hot path is
kept to one EVALSHA instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError

from tollgate_common.redis.commands import Client
from tollgate_gateway.auth import Authorizer, RefundNotLanded
from tollgate_gateway.metrics import Metrics
from tollgate_gateway.spool import Spool
from tollgate_gateway.tracing import GatewayTracing, TraceContext

log = logging.getLogger(__name__)
PENDING_KEY = "tollgate:gateway:refunds:pending"
FIRST_DELAY, MAX_DELAY = 0.1, 5.0
SWEEP_BATCH = 500
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def next_delay(attempts: int) -> float:
    """Back-off before try ``attempts + 1`` (pure)."""
    return float(min(FIRST_DELAY * 2 ** max(attempts - 1, 0), MAX_DELAY))


class Refunds:
    """The gateway's refund queue (see the module docstring)."""

    def __init__(
        self,
        authorizer: Authorizer | None,
        redis: Client,
        metrics: Metrics,
        sweep_seconds: float,
        spool: Spool,
        traced: GatewayTracing | None = None,
    ) -> None:
        self.authorizer = authorizer  # None: no auth, so nothing is ever owed (never started)
        self.redis = redis  # redis-py: parking is off the hot path
        self.metrics = metrics
        self.sweep_seconds = sweep_seconds
        self.spool = spool
        self.due: dict[str, float] = {}  # charge id -> monotonic time of its next try
        self.attempts: dict[str, int] = {}
        self.parked: set[str] = set()
        # route and credits of a refund this process was handed (not of a swept or spooled one):
        # only for tollgate_gateway_credits_refunded_total
        self.what: dict[str, tuple[str, int]] = {}
        self.status: dict[str, str] = {}  # charge id -> status class the client saw (usage)
        self.traced = traced
        self.traces: dict[str, TraceContext] = {}  # charge id -> its request's trace context
        self._inflight: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(
        self, charge_id: str, route: str = "", cost: int = 0, status_class: str = ""
    ) -> None:
        """Owe this charge back: try now, keep trying until it lands. ``status_class``: what the
        client was answered instead, for the key's usage (kept in memory only: a parked or
        spooled refund lands without it)."""
        if charge_id in self.due:
            return
        if cost:
            self.what[charge_id] = (route, cost)
        if status_class:
            self.status[charge_id] = status_class
        if self.traced is not None:
            found = self.traced.trace_context()
            if found is not None:
                self.traces[charge_id] = found
        self.due[charge_id] = 0.0
        self.attempts[charge_id] = 0
        self._count()
        self._wake.set()

    async def start(self) -> None:
        for charge_id in self.spool.load():  # this gateway's, from before its restart
            self.submit(charge_id)
        await self._sweep(older_than=None)  # a gateway that crashed left these
        self._task = asyncio.ensure_future(self._run())

    async def stop(self, grace: float) -> None:
        """Try to land what is owed within ``grace`` seconds; park what is left."""
        deadline = time.monotonic() + grace
        while self.due and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        left = [c for c in self.due if c not in self.parked]
        if left:
            await self._park(left)
        if self.due:
            log.warning("%d refunds not landed at shutdown (parked: %d)", len(self.due), len(left))

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self.sweep_seconds
        while True:
            now = time.monotonic()
            if now >= next_sweep:
                await self._sweep(older_than=self.sweep_seconds)
                next_sweep = now + self.sweep_seconds
            for charge_id, at in list(self.due.items()):
                if at <= now and charge_id not in self._inflight:
                    self._inflight.add(charge_id)
                    task = asyncio.ensure_future(self._try(charge_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            waits = [at - now for c, at in self.due.items() if c not in self._inflight]
            wait = min([next_sweep - now, *waits])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.01))

    async def _try(self, charge_id: str) -> None:
        m = self.metrics
        assert self.authorizer is not None, "refunds are started only with an authorizer"
        try:
            found = self.traces.get(charge_id)
            traced = self.traced
            span = (
                traced.refund_span(found, charge_id, self.attempts.get(charge_id, 0) + 1)
                if traced is not None and found is not None
                else contextlib.nullcontext()
            )
            with span:
                refunded = await self.authorizer.refund(charge_id, self.status.get(charge_id, ""))
        except RefundNotLanded as exc:
            n = self.attempts[charge_id] = self.attempts.get(charge_id, 0) + 1
            m.child(m.refunds, "retry").inc()
            if n == 1 or n % 20 == 0:
                log.warning("refund of charge %s not landed (try %d): %s", charge_id, n, exc)
            self.due[charge_id] = time.monotonic() + next_delay(n)
            if charge_id not in self.parked:
                await self._park([charge_id])
            return
        finally:
            self._inflight.discard(charge_id)
            self._wake.set()
        m.child(m.refunds, "refunded" if refunded else "absent").inc()
        route, cost = self.what.pop(charge_id, ("", 0))
        self.status.pop(charge_id, None)
        self.traces.pop(charge_id, None)
        if refunded and cost:
            m.child(m.credits_refunded, route).inc(cost)
        self.due.pop(charge_id, None)
        self.attempts.pop(charge_id, None)
        self._count()
        self.spool.discard([charge_id])
        if charge_id in self.parked:
            self.parked.discard(charge_id)
            # if this fails, a later sweep finds it and refunds it again: a no-op
            with contextlib.suppress(*REDIS_ERRORS):
                await self.redis.zrem(PENDING_KEY, charge_id)

    async def _park(self, charge_ids: list[str]) -> None:
        try:
            await self.redis.zadd(PENDING_KEY, {c: time.time() for c in charge_ids}, nx=True)
        except REDIS_ERRORS as exc:
            log.warning("%d refunds not parked in Redis, spooled: %r", len(charge_ids), exc)
            self.spool.add(charge_ids)
            return
        self.parked.update(charge_ids)
        self.spool.discard(charge_ids)  # Redis holds them now, for every gateway

    async def _sweep(self, older_than: float | None) -> None:
        """Take on refunds parked in Redis (by any gateway) that are not landed yet."""
        top = "+inf" if older_than is None else time.time() - older_than
        try:
            found = await self.redis.zrangebyscore(PENDING_KEY, "-inf", top, 0, SWEEP_BATCH)
        except REDIS_ERRORS:
            return
        for raw in found:
            charge_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            self.parked.add(charge_id)
            self.submit(charge_id)

    def _count(self) -> None:
        self.metrics.refunds_pending.value = len(self.due)
