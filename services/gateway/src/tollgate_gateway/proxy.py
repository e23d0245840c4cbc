"""The proxy path, ``/api/v1/<path>``: ``Proxy.handle`` takes an ``Incoming`` straight from the
services' HTTP server (no framework routing: FastAPI's costs about 120 µs a request, more than the
rest of this path) and gives back a ``Reply``; that is its one interface (ASGI servers reach it
through asgi.py).

One request: match the route, authorize and charge (auth service), answer from the cache or run
the route's strategy under its deadline, pass the answer on. Errors become HTTP in errors.py.

Every debit ends as a served answer or a refund (issue 11): the charge id is chosen here before
asking, and anything but a served answer after the charge (upstreams failed, no data unless the
route says ``refundOn404: false``, deadline, client gone, cancelled) hands it to the refund queue
(refunds.py), as does an authorize whose outcome is unknown.

An answer over ``responseBufferBytes`` streams (bodystream.py, issue 14): it is chosen on its
status line and headers (a streamed body is not parsed for successWhen's ``status: true``), it is
never cached, and it is charged when its head goes out. A client that leaves mid-body is not
refunded (the upstream answered); an upstream that dies mid-body is, and is reported like an
upstream failure (log, event, ``tollgate_gateway_streamed_responses{result="upstream_failed"}``):
the client got a cut-off body, not the answer it paid for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from tollgate_common.http.exchange import BodyTooLarge
from tollgate_common.ledger import Decision
from tollgate_common.ledger.apikeys import MAX_PATH_CHARS, key_id_of, new_charge_id
from tollgate_common.ledger.decision import UNKNOWN_OUTCOME
from tollgate_common.ledger.layout import status_class
from tollgate_common.types import Headers
from tollgate_gateway.auth import INVALID_KEY, MISSING_KEY, Authorizer, too_long
from tollgate_gateway.bodystream import UPSTREAM_FAILED, BodyStream
from tollgate_gateway.cache import Cached, CacheRule, Coalescer, ResponseCache, Served, cache_rule
from tollgate_gateway.client import UpstreamError, UpstreamPool
from tollgate_gateway.deadline import Deadline
from tollgate_gateway.errors import (
    AccessDenied,
    AuthUnavailable,
    DeadlineExceeded,
    GatewayError,
    NoData,
    PayloadTooLarge,
    RouteNotFound,
    UpstreamFailed,
    UriTooLong,
    decision_headers,
    to_response,
)
from tollgate_gateway.events import EventSink
from tollgate_gateway.headers import (
    client_response_headers,
    key_from_headers,
    split_query,
    upstream_request_headers,
)
from tollgate_gateway.metrics import Metrics
from tollgate_gateway.outcome import Verdict, classify
from tollgate_gateway.path import normalize
from tollgate_gateway.pricing import credit_cost
from tollgate_gateway.refunds import Refunds
from tollgate_gateway.request import ClientGone, Incoming, Reply, served_request_id
from tollgate_gateway.settings import GatewaySettings
from tollgate_gateway.strategies import Attempt, may_send, plan, staggered
from tollgate_gateway.table import RouteState
from tollgate_gateway.tracing import GatewayTracing
from tollgate_gateway.upstreams import CompiledRoute, Upstream

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
PREFIX_SLASH = PREFIX + "/"
JSON = (b"content-type", b"application/json")


@dataclass(slots=True)
class Parts:
    """The gateway's parts a request uses, opened by the app's lifespan."""

    settings: GatewaySettings
    state: RouteState
    pool: UpstreamPool
    authorizer: Authorizer | None  # None: no auth configured, nothing asked or charged
    cache: ResponseCache
    events: EventSink | None
    metrics: Metrics
    refunds: Refunds
    tracing: GatewayTracing | None = None  # None: tracing off, no span on any path


class Proxy:
    def __init__(self, parts: Parts, coalescer: Coalescer | None = None) -> None:
        self.p = parts
        # The loop this proxy serves on, looked up once: on Python 3.11 every
        # get_running_loop() (behind current_task() and the call_later() helpers) makes a
        # getpid() syscall, and py-spy showed those as ~10% of a proxied request.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.coalescer = coalescer or Coalescer(unclaimed)
        self.tr = parts.tracing

    def untraced(self, authorizer: Authorizer | None) -> Proxy:
        """This proxy without tracing's hooks, for the requests the head sampler leaves out
        (most): they have no span to add to, and asking costs ~0.5 % of a request a hook
        (tollgate_common.tracing.HeadSampler.front). Same parts and coalescer; ``authorizer``
        is the one the traced authorizer wraps."""
        return Proxy(replace(self.p, authorizer=authorizer, tracing=None), self.coalescer)

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        return self.loop

    async def handle(self, req: Incoming) -> Reply | None:
        """Serve one request; None when the client went away before the answer."""
        m = self.p.metrics
        started = time.perf_counter()
        rid = served_request_id(req.headers)
        m.inflight.inc()
        route = "-"
        try:
            compiled, path = self._route(req)
            route = compiled.route.name
            if self.tr is not None:
                self.tr.routed(route)
            reply = await self._serve_route(req, rid, compiled, path)
        except GatewayError as exc:
            status, headers, body = to_response(exc)
            reply = Reply(status, [JSON, *headers], body)
        except ClientGone:
            m.child(m.requests, route, "499").inc()  # nginx's "client closed request"
            return None
        finally:
            m.inflight.dec()
        reply.headers.append((b"x-request-id", rid))
        m.child(m.requests, route, str(reply.status)).inc()
        m.child(m.latency, route).observe(time.perf_counter() - started)
        return reply

    def _route(self, req: Incoming) -> tuple[CompiledRoute, str]:
        """The route of a request and its normalized path after /api/v1 (path.py), the one path
        both routed and sent upstream (not a coroutine: every await level is paid for twice per
        upstream answer, once down and once back up)."""
        full = normalize(req.raw_path)
        if not full.startswith(PREFIX_SLASH):  # /api%2Fv1/...: decoded, it only looked like it
            raise RouteNotFound(f"no such route: {full}")
        path = full[len(PREFIX) :]
        if len(path) > MAX_PATH_CHARS:  # the ledger's bound, answered here in both auth modes
            raise UriTooLong(f"request path over {MAX_PATH_CHARS} characters")
        compiled = self.p.state.router.match(path)
        if compiled is None:
            raise RouteNotFound(f"no such route: {path}")
        return compiled, path

    async def _serve_route(
        self, req: Incoming, request_id: bytes, compiled: CompiledRoute, path: str
    ) -> Reply:
        key, query_parts = credentials(req)
        try:
            body = await req.read_body(self.p.settings.max_request_body_bytes)
        except BodyTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        rule = cache_rule(
            req.method, compiled.route.name, compiled.route.spec.cache, path, query_parts
        )
        answer = None
        if rule is not None:
            if self.tr is None:
                answer = await self.p.cache.get(rule.key)
            else:
                answer = await self.tr.cache_get(self.p.cache, rule.key)
            self._count_lookup(compiled, answer)
        served = Served.MISS if answer is None else Served.HIT
        decision = await self._authorize(compiled, key, path, req.client, served)
        # From here on the request is charged (decision.charge_id): it ends served or refunded.
        # Inline rather than one more coroutine: each await level costs twice per answer.
        try:
            if answer is None:
                target = upstream_target(path, query_parts)
                headers = self._upstream_headers(req, request_id, compiled)
                work = self._work(compiled, req.method, target, headers, body, rule)
                try:
                    answer = await work
                    if answer.stream is not None and not answer.stream.claim():
                        # A coalesced miss that streams: only one waiter can pull the body.
                        answer = await self._fetch_answer(
                            compiled, req.method, target, headers, body, None
                        )
                except asyncio.CancelledError:
                    self._raise_if_gone(req)
                    raise
        except (UpstreamFailed, DeadlineExceeded) as exc:
            return await self._stale_or_fail(compiled, rule, decision, exc)
        except BaseException as exc:
            self._unserved(compiled, decision, exc)
            raise
        self._served(compiled)
        if answer.stream is not None:
            self._watch(compiled, decision, answer.stream)
        return answer_reply(answer, served, decision)

    def _watch(self, compiled: CompiledRoute, d: Decision | None, stream: BodyStream) -> None:
        """A streamed answer: no byte for the route's timeout fails it, and how it ends is
        counted (and refunded and reported when the upstream failed mid-body)."""
        stream.idle_timeout = compiled.route.spec.timeout_seconds
        stream.watch(partial(self._stream_ended, compiled, d))

    def _stream_ended(
        self, compiled: CompiledRoute, d: Decision | None, outcome: str, exc: Exception | None
    ) -> None:
        m = self.p.metrics
        m.child(m.streams, compiled.route.name, outcome).inc()
        if outcome == UPSTREAM_FAILED:
            name = compiled.route.name
            self._report(
                compiled,
                UpstreamFailed(
                    f"the upstream of {name} failed mid-body",
                    detail=f"the upstream of {name} failed mid-body: {exc}",
                ),
            )
            self._refund(compiled, d, "5xx")

    async def _stale_or_fail(
        self,
        compiled: CompiledRoute,
        rule: CacheRule | None,
        d: Decision | None,
        exc: UpstreamFailed | DeadlineExceeded,
    ) -> Reply:
        """Every upstream failed or the deadline passed: the failure is reported either way;
        a stale entry is served when the route keeps them (RFC 5861 stale-if-error), charged or
        refunded as the route says, and otherwise the error goes on to the client, refunded."""
        self._report(compiled, exc)
        try:
            entry = None
            if rule is not None and rule.stale_seconds > 0:
                entry = await self.p.cache.stale(rule.key)
        except BaseException:  # cancelled while looking: nothing was served
            self._refund(compiled, d)
            raise
        if entry is None:
            self._refund(compiled, d, status_class(exc.status))
            raise exc
        m = self.p.metrics
        m.child(m.cache, compiled.route.name, "stale").inc()
        if d is not None and credit_cost(compiled.route.spec, Served.STALE) < d.cost:
            self._refund(compiled, d)
        return stale_reply(entry, d, time.time())

    def _count_lookup(self, compiled: CompiledRoute, hit: Cached | None) -> None:
        m = self.p.metrics
        m.child(m.cache, compiled.route.name, "hit" if hit else "miss").inc()

    def _upstream_headers(
        self, req: Incoming, request_id: bytes, compiled: CompiledRoute
    ) -> Headers:
        return upstream_request_headers(
            req.headers,
            client_ip=req.client,
            scheme=req.scheme,
            request_id=request_id,
            extra=compiled.extra_headers,
            trust_forwarded_for=self.p.settings.trust_forwarded_for,
        )

    def _work(
        self,
        compiled: CompiledRoute,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        rule: CacheRule | None,
    ) -> Coroutine[Any, Any, Cached]:
        """The upstream call for a miss (not a coroutine itself: no await level of its own);
        concurrent misses of a cacheable request share one (cache.Coalescer)."""
        if rule is None:
            return self._fetch_answer(compiled, method, target, headers, body, None)
        key = rule.key
        return self.coalescer.run(
            self._loop(),
            key,
            lambda: self._fetch_answer(compiled, method, target, headers, body, rule),
            lambda: self.p.cache.local.get(key, time.time()),
        )

    def _raise_if_gone(self, req: Incoming) -> None:
        """In a cancellation: ClientGone when it was the server's, for a client that left (the
        server cancels the request's task then, with ``gone`` set); otherwise nothing."""
        if req.gone is None or not req.gone():
            return
        me = asyncio.current_task(self._loop())
        assert me is not None
        me.uncancel()
        raise ClientGone() from None

    def _unserved(self, compiled: CompiledRoute, d: Decision | None, exc: BaseException) -> None:
        """A charged request that ends without an answer (no data, client gone, cancelled, a
        bug): refunded, unless the upstreams had no data and the route charges for that."""
        if isinstance(exc, NoData):
            if compiled.route.spec.refund_on_404:
                self._refund(compiled, d, "4xx")
        else:
            self._refund(compiled, d)

    async def _fetch_answer(
        self,
        compiled: CompiledRoute,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        rule: CacheRule | None,
    ) -> Cached:
        """The upstream's answer as the client gets it, stored under the rule's key (when given
        and the answer qualifies) before it is returned: a coalesced fetch stores it while its key
        is still in flight, so nobody arriving later misses it (cache.Coalescer)."""
        won = await self._fetch(compiled, method, target, headers, body)
        assert won.response is not None
        resp = won.response
        out = client_response_headers(resp.headers)
        if resp.stream is not None:  # too large to hold: never stored (only whole bodies are)
            return Cached(resp.status, out, b"", 0.0, stream=resp.stream)
        if rule is not None and rule.admits(resp.headers, resp.body):
            entry = rule.entry(resp.status, out, resp.body, time.time())
            self.p.cache.put(rule.key, entry)
            return entry
        return Cached(resp.status, out, resp.body, 0.0)

    async def _authorize(
        self, compiled: CompiledRoute, key: str | None, path: str, client: str, served: Served
    ) -> Decision | None:
        authorizer = self.p.authorizer
        if authorizer is None:
            return None
        spec = compiled.route.spec
        m = self.p.metrics
        if not key:
            d = MISSING_KEY
        elif too_long(key):  # no key is that long: the client's error, in both modes
            d = INVALID_KEY
        else:
            cost = credit_cost(spec, served)
            charge_id = new_charge_id(key_id_of(key))  # a refund finds its key's slot
            try:
                d = await authorizer.authorize(
                    key, compiled.route.name, path, cost, client, charge_id, served is Served.HIT
                )
            except BaseException:  # cancelled mid-ask (client gone, shutdown): maybe charged
                if cost:
                    self.p.refunds.submit(charge_id)
                raise
            if d.reason in UNKNOWN_OUTCOME and cost and d.sent:
                # Auth or Redis died after the debit, maybe: the refund makes sure it did not.
                # (Not when the ask never left: a Redis or auth that is down would otherwise
                # owe a refund per request for the whole outage.)
                self.p.refunds.submit(charge_id)
        m.child(m.auth, d.reason).inc()
        if d.allowed:
            if d.cost:
                m.child(m.credits_charged, compiled.route.name).inc(d.cost)
            if served is Served.HIT and spec.credit_cost > d.cost:
                m.child(m.credits_saved, compiled.route.name).inc(spec.credit_cost - d.cost)
            return d
        if d.reason == "unavailable":
            if spec.fail_open:
                m.child(m.fail_open, compiled.route.name).inc()
                return None
            raise AuthUnavailable()
        if d.reason in UNKNOWN_OUTCOME:
            raise AuthUnavailable()
        if d.reason == "rate_limited":
            m.child(m.rate_limited, compiled.route.name, d.plan).inc()
        raise AccessDenied(d)

    async def _fetch(
        self, compiled: CompiledRoute, method: str, target: str, headers: Headers, body: bytes
    ) -> Attempt:
        spec = compiled.route.spec
        candidates, delay = plan(compiled, time.monotonic())

        spans = self.tr.attempts(compiled, method, candidates) if self.tr is not None else None
        if spans is None:

            def send(up: Upstream) -> Awaitable[Attempt]:
                return self._attempt(compiled, up, method, target, headers, body)

        else:

            def send(up: Upstream) -> Awaitable[Attempt]:  # in a span of its own
                return spans.run(up, self._attempt(compiled, up, method, target, headers, body))

        try:
            async with Deadline(self._loop(), spec.timeout_seconds):
                if len(candidates) == 1:  # the common case, without staggered()'s await level
                    a = await send(candidates[0])
                    won, attempts = (a if a.verdict is Verdict.GOOD else None), [a]
                else:
                    won, attempts = await staggered(candidates, send, delay)
        except TimeoutError:
            raise DeadlineExceeded(
                f"no upstream answered within {spec.timeout_seconds:g}s"
            ) from None
        if won is not None:
            return won
        if any(a.verdict is Verdict.NODATA for a in attempts):
            raise NoData(_nodata_message(attempts))
        tried = len({id(a.upstream) for a in attempts})
        detail = "; ".join(f"{a.upstream.origin}: {a.error or 'bad answer'}" for a in attempts)
        raise UpstreamFailed(
            f"every upstream of {compiled.route.name} failed "
            f"({tried} upstream{'s' if tried != 1 else ''} tried)",
            detail=f"every upstream server failed ({detail})",
        )

    async def _attempt(
        self,
        compiled: CompiledRoute,
        up: Upstream,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
    ) -> Attempt:
        b = up.breaker
        if b.failures >= b.failure_threshold and not may_send(compiled, up, time.monotonic()):
            return Attempt(up, Verdict.FAIL, None, "ejected (its probe is in flight)")
        spec = compiled.route.spec
        success_when = "http2xx" if method == "HEAD" else spec.success_when
        up.inflight += 1
        started = time.perf_counter()
        try:
            resp = await self.p.pool.request(up.origin, method, up.base + target, headers, body)
        except UpstreamError as exc:
            attempt = Attempt(up, Verdict.FAIL, None, str(exc) or type(exc).__name__)
        except asyncio.CancelledError:
            up.breaker.release()
            raise
        else:
            if resp.stream is None:
                verdict = classify(resp.status, resp.body, success_when)
            else:  # chosen on its head: a streamed body is not parsed
                verdict = classify(resp.status, b"", "http2xx")
            attempt = Attempt(up, verdict, resp, f"HTTP {resp.status}")
            if verdict is not Verdict.GOOD:
                attempt.release()
        finally:
            up.inflight -= 1
        m = self.p.metrics
        m.child(m.upstream_latency, compiled.route.name, up.origin, attempt.verdict.value).observe(
            time.perf_counter() - started
        )
        if attempt.verdict is Verdict.FAIL:
            if up.breaker.failure(time.monotonic()):
                m.child(m.ejections, compiled.route.name, up.origin).inc()
                log.warning(
                    "upstream %s of %s ejected for %.1fs",
                    up.origin,
                    compiled.route.name,
                    up.breaker.eject_seconds,
                )
        else:
            up.breaker.success()
        return attempt

    def _served(self, compiled: CompiledRoute) -> None:
        if self.p.events is not None:
            self.p.events.route_served(compiled.route.name)

    def _report(self, compiled: CompiledRoute, exc: GatewayError) -> None:
        """A route whose upstreams all failed: logged and sent to the notifier."""
        log.warning("%s answered %d: %s", compiled.route.name, exc.status, exc.detail)
        if self.p.events is not None:
            self.p.events.route_failed(compiled.route.name, exc.status, exc.detail)

    def _refund(self, compiled: CompiledRoute, d: Decision | None, status: str = "") -> None:
        """Nothing good came back: the credits of this request go back, off the response path
        (with the status class the client got instead, for the key's usage)."""
        if d is not None and d.charge_id:
            self.p.refunds.submit(d.charge_id, compiled.route.name, d.cost, status)


def _nodata_message(attempts: list[Attempt]) -> str:
    import orjson

    for a in attempts:
        if a.verdict is Verdict.NODATA and a.response is not None:
            try:
                doc = orjson.loads(a.response.body)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("message"), str):
                return str(doc["message"])
    return "no data for this request"


def unclaimed(answer: Cached) -> None:
    """A coalesced answer whose last waiter left as it landed: a stream nobody pulls is closed
    (its connection would otherwise stay taken, paused, for good)."""
    if answer.stream is not None and answer.stream.claim():
        answer.stream.close()


def credentials(req: Incoming) -> tuple[str | None, list[bytes]]:
    """The request's API key (query first, then headers) and its query without it."""
    key, query_parts = split_query(req.query_string)
    return (key if key is not None else key_from_headers(req.headers)), query_parts


def upstream_target(path: str, query_parts: list[bytes]) -> str:
    """The request-target sent upstream: the normalized path, the query minus credentials."""
    if not query_parts:
        return path
    return path + "?" + b"&".join(query_parts).decode("latin-1")


def stale_reply(entry: Cached, d: Decision | None, now: float) -> Reply:
    """A stale entry as the answer, with its Age (RFC 9111 §5.1): ours, in place of any the
    upstream sent, since the entry's own age is what the client must weigh."""
    age = b"%d" % max(int(now - entry.stored_at), 0)
    extra = decision_headers(d) if d is not None else []
    kept = [(n, v) for n, v in entry.headers if n != b"age"]
    headers = [*kept, (b"x-cache", Served.STALE.value), (b"age", age), *extra]
    return Reply(entry.status, headers, entry.body)


def answer_reply(answer: Cached, served: Served, d: Decision | None) -> Reply:
    extra = decision_headers(d) if d is not None else []
    headers = [*answer.headers, (b"x-cache", served.value), *extra]
    return Reply(answer.status, headers, answer.body, answer.stream)
