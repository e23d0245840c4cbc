"""The gateway's spans, when tracing is on (tollgate_common.tracing sets it up from ``OTEL_*``).

One trace per request: the server span (tollgate_common.tracing.ServerSpans), and under it
``authorize`` (the HTTP call to auth, whose own server span joins through the ``traceparent`` the
upstream pool injects, or the ledger script in AUTH_MODE=redis), ``cache lookup`` (the tier that
answered, the Redis GET as an event) and one ``upstream`` span per attempt of the strategy (a
race's losers end cancelled, a hedge is marked, a breaker skip is an event). Off, none of this is
called: the proxy holds None and keeps its untraced path.

Attributes follow the OpenTelemetry HTTP semantic conventions. A key never appears in one: the
proxy hands this module a route, a path without its query, an upstream origin, a decision's
reason and plan, never the key or the client's headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tollgate_common.http.exchange import Handler
from tollgate_common.ledger import Decision
from tollgate_common.spans import Spans
from tollgate_common.tracing import (
    HeadSampler,
    ServerSpans,
    current_traceparent,
    extract,
    named,
    recording,
)
from tollgate_gateway.auth import Authorizer
from tollgate_gateway.cache import Cached, ResponseCache
from tollgate_gateway.outcome import Verdict
from tollgate_gateway.request import Incoming, Reply, request_id
from tollgate_gateway.strategies import Attempt
from tollgate_gateway.upstreams import CompiledRoute, Upstream

# proxy._attempt's answer for an endpoint whose half-open probe another request holds
SKIPPED_PREFIX = "ejected"
TraceContext = tuple[str, str]  # traceparent, tracestate ("" for none)


class GatewayTracing:
    """Each hook first asks whether the request's span records: an unsampled request (most, at
    a low ratio) gets no child span, only its trace context passed on."""

    def __init__(self, tracer: trace.Tracer, heads: HeadSampler | None = None) -> None:
        self.tracer = tracer
        self.spans = Spans(tracer)  # the request's own spans; a refund's are the SDK's
        # The request id is made once, here, and the proxy takes it from served.SERVED (request.py).
        self._server = ServerSpans(tracer, request_id, heads)
        self.ledger = False

    def server(self, handler: Handler, unsampled: Handler | None = None) -> Handler:
        """``handler`` in a server span; ``unsampled`` serves the requests not sampled."""
        return self._server.wrap(handler, unsampled=unsampled)

    def routed(self, route: str) -> None:
        named(route)

    def authorizer(self, inner: Authorizer, mode: str) -> Authorizer:
        self.ledger = mode == "redis"  # the refunds' spans: the ledger in-process, or auth's RPC
        return TracedAuthorizer(inner, self.spans, mode)

    def cache_get(self, cache: ResponseCache, key: bytes) -> Awaitable[Cached | None]:
        if not recording():
            return cache.get(key)
        return self._cache_get(cache, key)

    async def _cache_get(self, cache: ResponseCache, key: bytes) -> Cached | None:
        """``cache.get`` in a span saying which tier answered (local, redis, none)."""
        with self.spans.current("cache lookup") as span:
            hit = cache.local.get(key, time.time())  # cache.get's own first step, inlined
            tier = "local"
            if hit is None:
                span.add_event("redis GET", {"db.system.name": "redis"})
                hit = await cache.get(key)
                tier = "redis" if hit is not None else "none"
            span.set_attribute("tollgate.cache.hit_tier", tier)
            return hit

    def trace_context(self) -> TraceContext | None:
        """The current request's trace context, for work done for it later (a refund); None
        outside a trace."""
        traceparent, tracestate = current_traceparent()
        return (traceparent, tracestate) if traceparent else None

    @contextlib.contextmanager
    def refund_span(self, found: TraceContext, charge_id: str, attempt: int) -> Iterator[None]:
        """One try of a refund, as a span of the trace of the request that owed it (its
        parent-based sampling decides, as for the request: an unsampled one stays unsampled).
        A try that does not land is an error; the queue tries again in a span of its own."""
        parent = extract([(b"traceparent", found[0].encode()), (b"tracestate", found[1].encode())])
        kind = SpanKind.INTERNAL if self.ledger else SpanKind.CLIENT
        with self.tracer.start_as_current_span(
            "refund",
            parent,
            kind,
            attributes={"tollgate.charge_id": charge_id, "tollgate.refund.attempt": attempt},
        ) as span:
            if self.ledger:
                span.add_event("redis EVALSHA", {"db.system.name": "redis"})
            yield

    def attempts(
        self, compiled: CompiledRoute, method: str, candidates: list[Upstream]
    ) -> Attempts | None:
        """The attempt spans of a recorded request (None for one not sampled), after a breaker
        event on the server span for each endpoint the plan left out."""
        if not recording():
            return None
        span = trace.get_current_span()
        chosen = {id(u) for u in candidates}
        for up in compiled.upstreams:
            if id(up) not in chosen:
                span.add_event("breaker skip", {"tollgate.upstream": endpoint(up.origin)[2]})
        return Attempts(self.spans, compiled, method)


class Attempts:
    """The upstream spans of one request: counts the attempts in flight, so one that starts
    while another still runs, in a strategy other than race, is a hedge."""

    def __init__(self, spans: Spans, compiled: CompiledRoute, method: str) -> None:
        self.spans = spans
        self.route = compiled.route.name
        self.race = compiled.route.spec.strategy == "race"
        self.method = method
        self.inflight = 0
        self.n = 0

    async def run(self, up: Upstream, work: Awaitable[Attempt]) -> Attempt:
        hedge = self.inflight > 0 and not self.race
        self.n += 1
        span = self.spans.child(f"{self.method} upstream", SpanKind.CLIENT)
        if span.is_recording():
            host, port, origin = endpoint(up.origin)
            span.set_attributes(
                {
                    "http.request.method": self.method,
                    "http.route": self.route,
                    "server.address": host,
                    "server.port": port,
                    "tollgate.upstream": origin,
                    "tollgate.attempt": self.n,
                    "tollgate.attempt.hedge": hedge,
                }
            )
        token = context.attach(trace.set_span_in_context(span))
        self.inflight += 1
        try:
            a = await work
        except asyncio.CancelledError:
            # A race's loser, a hedge's original outrun, the deadline, or the client gone.
            span.set_attribute("tollgate.attempt.cancelled", True)
            span.set_status(Status(StatusCode.ERROR, "cancelled"))
            raise
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        else:
            _ended(span, a)
            return a
        finally:
            self.inflight -= 1
            context.detach(token)
            span.end()


@functools.lru_cache(maxsize=1024)
def endpoint(origin: str) -> tuple[str, int, str]:
    """Pure: host, port and ``scheme://host:port`` of an upstream origin, without any
    ``user:password@`` an endpoint URL may carry (that must not reach a trace either)."""
    parts = urlsplit(origin)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    return host, port, f"{parts.scheme}://{shown}:{port}"


def _ended(span: trace.Span, a: Attempt) -> None:
    if a.response is None and a.error.startswith(SKIPPED_PREFIX):
        span.add_event("breaker skip", {"tollgate.upstream": endpoint(a.upstream.origin)[2]})
        span.set_attribute("tollgate.attempt.skipped", True)
    if a.response is not None:
        span.set_attribute("http.response.status_code", a.response.status)
    span.set_attribute("tollgate.attempt.verdict", a.verdict.value)
    if a.verdict is Verdict.FAIL:
        span.set_status(Status(StatusCode.ERROR, a.error[:200]))


class TracedAuthorizer:
    """An Authorizer whose ``authorize`` runs in an ``authorize`` span (a CLIENT span around
    the HTTP call to auth, or an INTERNAL one around the ledger script in AUTH_MODE=redis)."""

    def __init__(self, inner: Authorizer, spans: Spans, mode: str) -> None:
        self.inner = inner
        self.spans = spans
        self.redis = mode == "redis"

    def authorize(
        self,
        key: str,
        route: str,
        path: str,
        cost: int,
        client: str,
        charge_id: str,
        cache_hit: bool = False,
    ) -> Coroutine[Any, Any, Decision]:
        if not recording():
            return self.inner.authorize(key, route, path, cost, client, charge_id, cache_hit)
        return self._authorize(key, route, path, cost, client, charge_id, cache_hit)

    async def _authorize(
        self,
        key: str,
        route: str,
        path: str,
        cost: int,
        client: str,
        charge_id: str,
        cache_hit: bool,
    ) -> Decision:
        kind = SpanKind.INTERNAL if self.redis else SpanKind.CLIENT
        with self.spans.current("authorize", kind) as span:
            if self.redis:
                span.add_event("redis EVALSHA", {"db.system.name": "redis"})
            d = await self.inner.authorize(key, route, path, cost, client, charge_id, cache_hit)
            if span.is_recording():
                span.set_attributes(
                    {
                        "tollgate.auth.reason": d.reason,
                        "tollgate.auth.allowed": d.allowed,
                        "tollgate.auth.cost": d.cost,
                        "tollgate.charge_id": charge_id,
                    }
                )
                if d.plan:
                    span.set_attribute("tollgate.auth.plan", d.plan)
                if d.reason in ("unavailable", "auth_error"):
                    span.set_status(Status(StatusCode.ERROR, d.reason))
            return d

    async def refund(self, charge_id: str, status_class: str = "") -> bool:
        return await self.inner.refund(charge_id, status_class)

    async def me(self, key: str, client: str) -> Decision:
        return await self.inner.me(key, client)

    async def aclose(self) -> None:
        await self.inner.aclose()


__all__ = [
    "Attempts",
    "GatewayTracing",
    "Incoming",
    "Reply",
    "TraceContext",
    "TracedAuthorizer",
]
