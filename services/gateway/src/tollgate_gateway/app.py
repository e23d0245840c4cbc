"""The gateway application: the proxy path plus a FastAPI app for everything else.

``serve(settings, stop)`` runs it on the gateway's own HTTP server (server.py) until ``stop``
resolves; asgi.py serves the same gateway to ASGI servers (the bench compares them). Nothing
connects until the lifespan starts, which opens exactly one upstream connection pool and one
Redis pool and closes them on shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from tollgate_common.http import asgibridge
from tollgate_common.http.exchange import error_body
from tollgate_common.http.server import HttpServer, Limits
from tollgate_common.redis.client import Lean, answers, create_lean, create_redis
from tollgate_common.redis.commands import Client
from tollgate_common.tracing import Tracing, setup_tracing
from tollgate_gateway.auth import create_authorizer
from tollgate_gateway.cache import LocalTier, ResponseCache
from tollgate_gateway.client import UpstreamPool
from tollgate_gateway.events import EventSink
from tollgate_gateway.me import ME_PATH, serve_me
from tollgate_gateway.metrics import Metrics
from tollgate_gateway.proxy import PREFIX_SLASH, Parts, Proxy
from tollgate_gateway.purges import PurgeListener
from tollgate_gateway.refunds import Refunds
from tollgate_gateway.request import Incoming, Reply, request_id
from tollgate_gateway.settings import GatewaySettings
from tollgate_gateway.spool import Spool
from tollgate_gateway.table import RedisFollower, RouteState, load_file
from tollgate_gateway.tracing import GatewayTracing

log = logging.getLogger(__name__)


class Gateway:
    """Owns the process's resources between lifespan start and stop."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.state = RouteState(self.metrics)
        self.proxy: Proxy | None = None
        self.purges: PurgeListener | None = None
        # proxy.handle, or the same in a server span when tracing is on (the probes and the
        # admin app stay untraced: they would bury the requests' traces)
        self.serve_proxy: Callable[[Incoming], Awaitable[Reply | None]] | None = None
        self.tracing: Tracing | None = None
        self.follower: RedisFollower | None = None
        self.redis: Client | None = None  # redis-py: the route table follower and the event sink
        self.lean: Lean | None = None  # the cache tier and, in AUTH_MODE=redis, the ledger
        self.admin = create_admin(self)
        self.address = (settings.host, settings.port)
        # With an admin port, the public port answers only the proxy path and the probes:
        # /metrics and /routes (internal upstream URLs) stay off a Service that may be public.
        self._public_only = settings.admin_port != 0

    def handle(self, req: Incoming) -> Awaitable[Reply | None]:
        """One request from the gateway's public server: the proxy path, or the admin app (the
        awaitable itself, not one more coroutine around it)."""
        if self.serve_proxy is not None and req.path.startswith(PREFIX_SLASH):
            return self.serve_proxy(req)
        if req.path == ME_PATH and self.proxy is not None:  # the consumers' own, public
            return self._me(req)
        if self._public_only and req.path not in PUBLIC_ADMIN_PATHS:
            return _not_here()
        return asgibridge.call(self.admin, req, self.address)

    async def _me(self, req: Incoming) -> Reply:
        assert self.proxy is not None
        reply = await serve_me(self.proxy.p.authorizer, req)
        reply.headers.append((b"x-request-id", request_id(req.headers)))
        return reply

    def handle_admin(self, req: Incoming) -> Awaitable[Reply | None]:
        """One request on the admin port: the admin app only."""
        return asgibridge.call(self.admin, req, self.address)

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI | None = None) -> AsyncIterator[None]:
        s = self.settings
        self.tracing = setup_tracing("tollgate-gateway")
        t = self.tracing
        traced = GatewayTracing(t.tracer, t.heads) if t is not None else None
        self.redis = redis = create_redis(s.redis_url)
        # The two per-request Redis paths (cache tier, credit ledger) use the lean client:
        # redis-py costs ~2x its CPU per round trip (tollgate_common/redis/resp.py has the numbers).
        self.lean = lean = create_lean(s.redis_url)
        pool = UpstreamPool(
            max_per_origin=s.upstream_max_connections,
            connect_timeout=s.upstream_connect_timeout_seconds,
            buffer_bytes=s.response_buffer_bytes,
        )
        events = EventSink(redis, self.metrics) if s.events_enabled else None
        authorizer = plain = create_authorizer(s, pool, lean, events.emit if events else _drop)
        if traced is not None:
            pool.propagate = True
            if authorizer is not None:
                authorizer = traced.authorizer(authorizer, s.auth_mode)
        spool = Spool(Path(s.refund_spool_file) if s.refund_spool_file else None)
        refunds = Refunds(authorizer, redis, self.metrics, s.refund_sweep_seconds, spool, traced)
        cache = ResponseCache(
            lean, LocalTier(s.cache_local_entries, s.cache_local_bytes), s.redis_backoff_seconds
        )
        self.purges = purges = PurgeListener(redis, cache.local)
        purges.start()
        if s.routes_file:
            self.state.apply(load_file(s.routes_file))
        else:
            self.follower = RedisFollower(redis, self.state, s.table_poll_seconds)
            await self.follower.start()
        if events is not None:
            events.start()
        if authorizer is not None:  # a pure proxy must not sweep (and drop) others' refunds
            await refunds.start()
        self.proxy = Proxy(
            Parts(
                s,
                self.state,
                pool,
                authorizer,
                cache,
                events,
                self.metrics,
                refunds,
                traced,
            )
        )
        self.serve_proxy = self.proxy.handle
        if traced is not None:
            self.serve_proxy = traced.server(self.proxy.handle, self.proxy.untraced(plain).handle)
        # Everything allocated so far lives as long as the process: move it out of the garbage
        # collector's sight, so collections during traffic stop re-scanning ~70k start-up objects
        # (they showed as p99 stalls; Instagram's gc.freeze() write-up describes the same).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)
        log.info("gateway ready on %s:%d (%d routes)", s.host, s.port, len(self.state.router))
        try:
            yield
        finally:
            # requests in flight have finished (the server drained them): land their refunds
            await refunds.stop(min(s.shutdown_grace_seconds, REFUND_GRACE_SECONDS))
            if self.follower is not None:
                await self.follower.stop()
            if events is not None:
                await events.stop()
            await purges.stop()
            await cache.drain()
            if authorizer is not None:
                await authorizer.aclose()
            await pool.aclose()
            await lean.aclose()
            await redis.aclose()
            if self.tracing is not None:
                self.tracing.shutdown()  # exports what the batch processor still holds

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready once a route table is in force, an empty one included (a fresh cluster with no
        ApiBackend yet is a valid state). The check also PINGs, within 0.5 s each and at once,
        the two Redis clients requests are served with: the lean one (cache tier, and the credit
        ledger in AUTH_MODE=redis) and the redis-py pool (route table, events). Their answers are
        reported (``lean``, ``pool``; ``redis``: the table follower reads Redis) and a connection
        Redis dropped is replaced by this probe rather than by a request; they do not decide
        readiness: a Redis outage hits every replica alike, and pulling them all out of the
        Service would turn a Redis blip into a full outage, failOpen routes and the last good
        table included."""
        lean, pool = await self.pings()
        detail = {
            "table_version": self.state.version,
            "routes": len(self.state.router),
            "redis": self.follower.healthy if self.follower is not None else True,
            "lean": lean,
            "pool": pool,
        }
        return self.state.loaded, detail

    async def pings(self) -> tuple[bool, bool]:
        """Whether the lean client and the redis-py pool answer a PING (0.5 s each, at once)."""
        if self.lean is None or self.redis is None:
            return False, False
        lean, pool = await asyncio.gather(
            answers(self.lean.execute("PING")), answers(self.redis.ping())
        )
        return lean, pool


REFUND_GRACE_SECONDS = 5.0  # at shutdown; what does not land by then stays parked in Redis
PUBLIC_ADMIN_PATHS = frozenset({"/healthz", "/readyz"})


async def _not_here() -> Reply:
    return Reply(404, [(b"content-type", b"application/json")], error_body("not found"))


# Per-request allocations triggered young collections that py-spy showed at ~8% of a worker;
# a larger first generation cut that (+8% req/s on a miss).
GC_THRESHOLD = (20_000, 50, 100)


async def serve(
    settings: GatewaySettings,
    stop: Awaitable[None],
    *,
    reuse_port: bool = False,
    on_listen: Callable[[Gateway, int], None] | None = None,
) -> None:
    """Run a gateway on its own server until ``stop`` resolves, then drain: stop accepting, let
    requests in progress finish (bounded by the grace period), close the pools."""
    gw = Gateway(settings)
    async with gw.lifespan():
        limits = Limits(
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_request_body_bytes,
            keep_alive_seconds=settings.keep_alive_seconds,
            header_timeout_seconds=settings.header_timeout_seconds,
            max_connections_per_client=settings.max_connections_per_client,
            send_timeout_seconds=settings.send_timeout_seconds,
        )

        def listening(port: int) -> None:
            gw.address = (settings.host, port)
            if on_listen is not None:
                on_listen(gw, port)

        admin = HttpServer(gw.handle_admin, limits) if settings.admin_port else None
        if admin is not None:
            await admin.listen(settings.host, settings.admin_port, reuse_port=reuse_port)
        server = HttpServer(gw.handle, limits, access_log=settings.access_log)
        try:
            await server.run(
                settings.host,
                settings.port,
                stop,
                grace_seconds=settings.shutdown_grace_seconds,
                reuse_port=reuse_port,
                on_listen=listening,
            )
        finally:
            if admin is not None:
                await admin.shutdown(0)


def _drop(_event: object) -> None:
    return None


def create_admin(gw: Gateway) -> FastAPI:
    # No Swagger UI: FastAPI's page loads it from a CDN and is blank offline (issue 15). The API
    # with endpoints to try is auth's, which serves its own (tollgate_auth/docs.py).
    admin = FastAPI(title="Tollgate gateway", lifespan=gw.lifespan, docs_url=None, redoc_url=None)

    @admin.exception_handler(HTTPException)
    async def http_error(_req: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"status": False, "message": str(exc.detail)}, exc.status_code)

    @admin.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"status": True}

    @admin.get("/readyz")
    async def readyz() -> JSONResponse:
        ok, detail = await gw.ready()
        return JSONResponse({"status": ok, **detail}, 200 if ok else 503)

    @admin.get("/metrics")
    async def metrics() -> Response:
        gw.metrics.redis_up.set(1 if all(await gw.pings()) else 0)
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @admin.get("/routes")
    async def routes() -> dict[str, Any]:
        return {
            "version": gw.state.version,
            "routes": [
                {
                    "name": c.route.name,
                    "pathPrefix": c.route.spec.path_prefix,
                    "strategy": c.route.spec.strategy,
                    "endpoints": [
                        {
                            "url": u.url,
                            "ejected": u.breaker.is_open(time.monotonic()),
                            "inflight": u.inflight,
                        }
                        for u in c.upstreams
                    ],
                }
                for c in gw.state.by_name.values()
            ],
        }

    return admin
