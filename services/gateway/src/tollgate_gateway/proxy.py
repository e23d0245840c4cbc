"""The proxy path, ``/api/v1/<path>``: ``Proxy.handle`` takes an ``Incoming`` straight from the
services' HTTP server (no framework routing: FastAPI's costs about 120 µs a request, more than the
rest of this path); ``Proxy.__call__`` is the same path as a raw ASGI app for ASGI servers.

One request: match the route, authorize and charge (auth service), answer from the cache or run
the route's strategy under its deadline, pass the answer on. Errors become HTTP in errors.py.

Every debit ends as a served answer or a refund (issue 11): the charge id is chosen here before
asking, and anything but a served answer after the charge (upstreams failed, no data unless the
route says ``refundOn404: false``, deadline, client gone, cancelled) hands it to the refund queue
(refunds.py), as does an authorize whose outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any

from tollgate_common.credits import MAX_PATH_CHARS, new_charge_id
from tollgate_common.exchange import BodyTooLarge
from tollgate_gateway.auth import INVALID_KEY, UNKNOWN_OUTCOME, Authorizer, Decision, too_long
from tollgate_gateway.cache import Cached, Coalescer, ResponseCache, cache_key
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
    Headers,
    cacheable_response,
    client_response_headers,
    key_from_headers,
    split_query,
    upstream_request_headers,
)
from tollgate_gateway.metrics import Metrics
from tollgate_gateway.outcome import Verdict, classify
from tollgate_gateway.path import normalize
from tollgate_gateway.refunds import Refunds
from tollgate_gateway.request import (
    ClientGone,
    Incoming,
    Reply,
    client_ip,
    read_body,
    request_id,
    until_disconnect,
    wait_disconnect,
)
from tollgate_gateway.settings import GatewaySettings
from tollgate_gateway.strategies import Attempt, may_send, plan, staggered
from tollgate_gateway.table import RouteState
from tollgate_gateway.tracing import GatewayTracing
from tollgate_gateway.upstreams import CompiledRoute, Upstream

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
PREFIX_SLASH = PREFIX + "/"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
JSON = (b"content-type", b"application/json")


@dataclass(slots=True)
class Parts:
    """The gateway's parts a request uses, opened by the app's lifespan."""

    settings: GatewaySettings
    state: RouteState
    pool: UpstreamPool
    authorizer: Authorizer
    auth_enabled: bool
    cache: ResponseCache
    events: EventSink | None
    metrics: Metrics
    refunds: Refunds
    tracing: GatewayTracing | None = None  # None: tracing off, no span on any path


class Proxy:
    def __init__(self, parts: Parts) -> None:
        self.p = parts
        # The loop this proxy serves on, looked up once: on Python 3.11 every
        # get_running_loop() (behind current_task() and the call_later() helpers) makes a
        # getpid() syscall, and py-spy showed those as ~10% of a proxied request.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.coalescer = Coalescer()
        self.tr = parts.tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI: the request from ``scope``/``receive``, the reply through ``send``."""
        req = Incoming(
            scope["method"],
            scope["path"],
            scope.get("raw_path") or scope["path"].encode(),
            scope["query_string"],
            scope["headers"],
            client_ip(scope),
            scope.get("scheme", "http"),
            lambda limit: read_body(receive, limit),
            lambda: wait_disconnect(receive),
        )
        reply = await self.handle(req)
        if reply is None:
            return
        reply.headers.append((b"content-length", b"%d" % len(reply.body)))
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": reply.headers}
        )
        await send({"type": "http.response.body", "body": reply.body})

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        return self.loop

    async def handle(self, req: Incoming) -> Reply | None:
        """Serve one request; None when the client went away before the answer."""
        m = self.p.metrics
        started = time.perf_counter()
        rid = request_id(req.headers)
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
        spec = compiled.route.spec
        headers = req.headers
        key, query_parts = split_query(req.query_string)
        if key is None:
            key = key_from_headers(headers)
        method = req.method
        try:
            body = await req.read_body(self.p.settings.max_request_body_bytes)
        except BodyTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None

        ckey = b""
        hit: Cached | None = None
        cacheable = method == "GET" and spec.cache.ttl_seconds > 0
        if cacheable:
            ckey = cache_key(method, compiled.route.name, path, query_parts)
            if self.tr is None:
                hit = await self.p.cache.get(ckey)
            else:
                hit = await self.tr.cache_get(self.p.cache, ckey)
            m = self.p.metrics
            m.child(m.cache, compiled.route.name, "hit" if hit else "miss").inc()

        decision = await self._authorize(compiled, key, path, req.client, free=hit is not None)
        # From here on the request is charged (decision.charge_id): it ends served or refunded.
        # Inline rather than one more coroutine: each await level costs twice per answer.
        try:
            extra = decision_headers(decision) if decision is not None else []
            if hit is not None:
                self._served(compiled)
                return Reply(hit.status, [*hit.headers, (b"x-cache", b"HIT"), *extra], hit.body)

            target = path
            if query_parts:
                target += "?" + b"&".join(query_parts).decode("latin-1")
            up_headers = upstream_request_headers(
                headers,
                client_ip=req.client,
                scheme=req.scheme,
                request_id=request_id,
                extra=compiled.extra_headers,
                trust_forwarded_for=self.p.settings.trust_forwarded_for,
            )

            work: Coroutine[Any, Any, Cached]
            if cacheable:
                work = self.coalescer.run(
                    self._loop(),
                    ckey,
                    lambda: self._fetch_answer(compiled, method, target, up_headers, body, ckey),
                    lambda: self.p.cache.local.get(ckey, time.time()),
                )
            else:
                work = self._fetch_answer(compiled, method, target, up_headers, body, None)
            if req.gone is None:  # an ASGI server: watch for the client leaving
                answer = await until_disconnect(self._loop(), req, work)
            else:  # our server cancels this task when the client leaves
                try:
                    answer = await work
                except asyncio.CancelledError:
                    if not req.gone():
                        raise
                    me = asyncio.current_task(self._loop())
                    assert me is not None
                    me.uncancel()
                    raise ClientGone() from None
        except (UpstreamFailed, DeadlineExceeded) as exc:
            self._failed(compiled, exc, decision)
            raise
        except NoData:
            if spec.refund_on_404:
                self._refund(compiled, decision)
            raise
        except BaseException:  # client gone, cancelled, a bug: nothing was served
            self._refund(compiled, decision)
            raise
        self._served(compiled)
        return Reply(answer.status, [*answer.headers, (b"x-cache", b"MISS"), *extra], answer.body)

    async def _fetch_answer(
        self,
        compiled: CompiledRoute,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        ckey: bytes | None,
    ) -> Cached:
        """The upstream's answer as the client gets it, stored under ``ckey`` (when given and
        cacheable) before it is returned: a coalesced fetch stores it while its key is still in
        flight, so nobody arriving later misses it (cache.Coalescer)."""
        won = await self._fetch(compiled, method, target, headers, body)
        assert won.response is not None
        resp = won.response
        out = client_response_headers(resp.headers)
        cache = compiled.route.spec.cache
        if (
            ckey is not None
            and len(resp.body) <= cache.max_body_bytes
            and cacheable_response(resp.headers)
        ):
            entry = Cached(resp.status, out, resp.body, time.time() + cache.ttl_seconds)
            self.p.cache.put(ckey, entry)
            return entry
        return Cached(resp.status, out, resp.body, 0.0)

    async def _authorize(
        self, compiled: CompiledRoute, key: str | None, path: str, client: str, free: bool
    ) -> Decision | None:
        if not self.p.auth_enabled:
            return None
        spec = compiled.route.spec
        m = self.p.metrics
        if not key:
            d = Decision(allowed=False, reason="missing_key")
        elif too_long(key):  # no key is that long: the client's error, in both modes
            d = INVALID_KEY
        else:
            cost = 0 if free and not spec.charge_cache_hits else spec.credit_cost
            charge_id = new_charge_id()
            try:
                d = await self.p.authorizer.authorize(
                    key, compiled.route.name, path, cost, client, charge_id
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
            if free and spec.credit_cost > d.cost:
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
            attempt = Attempt(
                up, classify(resp.status, resp.body, success_when), resp, f"HTTP {resp.status}"
            )
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

    def _failed(self, compiled: CompiledRoute, exc: GatewayError, d: Decision | None) -> None:
        log.warning("%s answered %d: %s", compiled.route.name, exc.status, exc.detail)
        if self.p.events is not None:
            self.p.events.route_failed(compiled.route.name, exc.status, exc.detail)
        self._refund(compiled, d)

    def _refund(self, compiled: CompiledRoute, d: Decision | None) -> None:
        """Nothing good came back: the credits of this request go back, off the response path."""
        if d is not None and d.charge_id:
            self.p.refunds.submit(d.charge_id, compiled.route.name, d.cost)


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
