"""The auth service: the authorize RPC straight from the services' HTTP server (it runs on every
gateway request), the admin API and health on FastAPI (with OpenAPI docs at /docs) through the
ASGI bridge. ``serve(settings, stop)`` runs it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from redis.exceptions import RedisError

from tollgate_auth import cache
from tollgate_auth.docs import mount_docs
from tollgate_auth.errors import (
    HTTP_ERRORS,
    STORE_UNAVAILABLE,
    AuthError,
    BadRequest,
    Invalid,
    StoreDown,
    Unauthorized,
    http_answer,
)
from tollgate_auth.keys import display_prefix, same_token
from tollgate_auth.metrics import Metrics
from tollgate_auth.models import (
    AuthorizeRequest,
    CreditsChange,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyPatch,
    KeyUsage,
    MeRequest,
    Plan,
    RefundRequest,
    UsageTotals,
)
from tollgate_auth.settings import AuthSettings
from tollgate_auth.store import Store
from tollgate_auth.usage import DAY, Granularity, bounded, hours, key_usage, totals
from tollgate_common.contracts.events import Event, EventType, Severity, publish
from tollgate_common.http import asgibridge
from tollgate_common.http.exchange import Incoming, Reply, error_body
from tollgate_common.http.server import HttpServer, Limits
from tollgate_common.ledger import Decision, Ledger
from tollgate_common.ledger.alerts import events_for
from tollgate_common.ledger.decision import denied, to_wire
from tollgate_common.ledger.ledger import ME_ROUTE
from tollgate_common.ledger.migration import migrate_all
from tollgate_common.redis.client import Lean, answers, create_lean, create_redis, describe
from tollgate_common.redis.commands import Client
from tollgate_common.tracing import in_trace, setup_tracing

log = logging.getLogger(__name__)
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class Service:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.admin_token = settings.admin_token or "dev-" + secrets.token_urlsafe(24)
        self.metrics = Metrics()
        self.redis: Client | None = None
        self.lean: Lean | None = None
        self.store: Store | None = None
        self.ledger: Ledger | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        self.redis = redis = create_redis(self.settings.redis_url)
        # authorize/refund run on every gateway request: the lean client costs about half of
        # redis-py's CPU per round trip (tollgate_common/redis/resp.py has the numbers).
        self.lean = lean = create_lean(self.settings.redis_url)
        self.store = Store(redis, self.settings.key_pepper, self.settings.charge_ttl_seconds)
        self.ledger = Ledger(lean, self.settings)
        self._spawn(self._start_up(redis, self.store))
        if not self.settings.admin_token:
            log.warning("dev mode: generated admin token %s", self.admin_token)
        gc.collect()
        gc.freeze()  # start-up objects out of the collector's sight: fewer p99 stalls
        try:
            yield
        finally:
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            await self.ledger.drain()
            await lean.aclose()
            await redis.aclose()

    async def unready_clients(self) -> list[str]:
        """Names of the Redis clients serving requests that do not answer a PING in time."""
        if self.lean is None or self.redis is None:
            return ["lean", "admin"]
        lean, admin = await asyncio.gather(
            answers(self.lean.execute("PING")), answers(self.redis.ping())
        )
        return [name for name, ok in (("lean", lean), ("admin", admin)) if not ok]

    def emit(self, events: list[Event]) -> None:
        """Append events off the request path, each with the request's trace context (the
        notifier links its delivery to it); a failure is logged, never raised."""
        for event in events:
            self._spawn(self._publish(in_trace(event)))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_up(self, redis: Client, store: Store) -> None:
        """The layout migration, then the expiry backfill (it reads the moved records); off the
        start-up path, so a large key set delays nothing: until a key has moved, the ledger and
        the store move it on first touch (tollgate_common/ledger/migration.py)."""
        try:
            await migrate_all(redis, self.settings.charge_ttl_seconds)
        except REDIS_ERRORS as exc:
            log.warning("layout migration not finished (keys move on first use): %s", describe(exc))
        await self._backfill_expiries(store)

    async def _backfill_expiries(self, store: Store) -> None:
        """Index the expiries of keys made before the index existed (key.expiring, issue 13)."""
        try:
            added = await store.backfill_expiries(int(time.time() * 1000))
        except REDIS_ERRORS as exc:
            log.warning("expiry index not backfilled: %s", describe(exc))
            return
        if added:
            log.info("expiry index: %d keys backfilled", added)

    async def _publish(self, event: Event) -> None:
        assert self.redis is not None
        try:
            await publish(self.redis, event)
        except REDIS_ERRORS as exc:
            log.warning("event %s not appended: %s", event.type, describe(exc))

    async def authorize(self, req: AuthorizeRequest) -> Decision:
        assert self.ledger is not None
        started = time.perf_counter()
        try:
            d = await self.ledger.authorize(
                req.key,
                req.path,
                req.cost,
                req.client,
                route=req.route,
                cache_hit=req.cache_hit,
                charge_id=req.charge_id,
            )
        except REDIS_ERRORS as exc:
            self.metrics.store_errors.inc()
            log.error("redis unavailable for authorize: %s", describe(exc))
            return denied("unavailable")
        self.metrics.decisions.labels(d.reason).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        events = events_for(d, req.route, req.client, self.settings.invalid_key_burst, "auth")
        if events:
            self.emit(events)
        return d

    async def me(self, req: MeRequest) -> Decision:
        """A key's own view: the ledger's free step (Ledger.me), its events (a refill it
        applied) raised as an authorize's are."""
        assert self.ledger is not None
        try:
            d = await self.ledger.me(req.key, req.client)
        except REDIS_ERRORS as exc:
            self.metrics.store_errors.inc()
            log.error("redis unavailable for me: %s", describe(exc))
            return denied("unavailable")
        self.metrics.decisions.labels(d.reason).inc()
        events = events_for(d, ME_ROUTE, req.client, self.settings.invalid_key_burst, "auth")
        if events:
            self.emit(events)
        return d

    async def refund(self, charge_id: str, status_class: str = "") -> bool:
        assert self.ledger is not None
        try:
            left = await self.ledger.refund(charge_id, status_class)
        except REDIS_ERRORS as exc:
            self.metrics.store_errors.inc()
            raise StoreDown(STORE_UNAVAILABLE) from exc
        ok = left >= 0
        self.metrics.refunds.labels("refunded" if ok else "unknown").inc()
        return ok


def _service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def _store(request: Request) -> Store:
    store = _service(request).store
    if store is None:
        raise StoreDown("starting up")
    return store


async def _require_admin(request: Request) -> None:
    given = request.headers.get("authorization", "").strip()
    scheme, _, token = given.partition(" ")
    if not given or (scheme.lower() == "bearer" and not token.strip()):
        raise Unauthorized("missing admin token: send Authorization: Bearer <token>")
    if scheme.lower() != "bearer" or not same_token(token.strip(), _service(request).admin_token):
        raise Unauthorized("invalid admin token")


class TimeSpan:
    """The ``from``/``to`` query of the usage endpoints: Unix seconds or ISO 8601 (UTC when no
    zone is given); ``to`` defaults to now, ``from`` to a day before ``to``."""

    def __init__(
        self,
        start: Annotated[datetime | None, Query(alias="from")] = None,
        end: Annotated[datetime | None, Query(alias="to")] = None,
    ) -> None:
        self.end = _unix(end) if end is not None else int(time.time())
        self.start = _unix(start) if start is not None else self.end - DAY


def _unix(at: datetime) -> int:
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


# Module level: FastAPI resolves these string annotations in the module's namespace.
Admin = Annotated[None, Depends(_require_admin)]
St = Annotated[Store, Depends(_store)]
Svc = Annotated[Service, Depends(_service)]
Span = Annotated[TimeSpan, Depends()]


def create_admin(svc: Service) -> FastAPI:
    """The admin app: one router per resource group; a new endpoint goes into its group's."""
    admin = FastAPI(
        title="Tollgate auth",
        lifespan=svc.lifespan,
        description="API keys, plans and credits.",
        docs_url=None,  # mount_docs serves /docs without a CDN
        redoc_url=None,
    )
    mount_docs(admin)
    for kind in HTTP_ERRORS:
        admin.add_exception_handler(kind, _error_response)
    admin.state.service = svc
    admin.include_router(cache.router, dependencies=[Depends(_require_admin)])
    for router in (health_routes, key_routes, usage_routes, plan_routes):
        admin.include_router(router)
    return admin


async def _error_response(_req: Request, exc: Exception) -> JSONResponse:
    """Every error of the admin app, as errors.py translates it."""
    status, message = http_answer(exc)
    return JSONResponse({"status": False, "message": message}, status)


health_routes = APIRouter()


@health_routes.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"status": True}


@health_routes.get("/readyz")
async def readyz(svc: Svc) -> JSONResponse:
    """Ready when both Redis clients that serve requests answer a PING within 0.5 s: the lean
    one the authorize and refund RPCs use, and the redis-py pool of the admin API and events.
    The PING goes over the connections those requests use, so a connection Redis dropped (a
    restart) is replaced here rather than by a request. 503 names the client that failed."""
    down = await svc.unready_clients()
    if down:
        raise StoreDown(f"redis unreachable ({', '.join(down)} client)")
    return JSONResponse({"status": True})


@health_routes.get("/metrics")
async def metrics(svc: Svc) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


key_routes = APIRouter()


@key_routes.post("/v1/admin/keys", status_code=201)
async def create_key(body: KeyCreate, _: Admin, st: St) -> KeyCreated:
    created = await st.create_key(body)
    log.info("key %s created (plan %r, %d credits)", created.prefix, created.plan, created.credits)
    return created


@key_routes.get("/v1/admin/keys")
async def list_keys(_: Admin, st: St) -> list[KeyInfo]:
    return await st.list_keys()


@key_routes.get("/v1/admin/keys/{key_id}")
async def show_key(key_id: str, _: Admin, st: St) -> KeyInfo:
    return await st.get_key(key_id)


@key_routes.patch("/v1/admin/keys/{key_id}")
async def patch_key(key_id: str, body: KeyPatch, _: Admin, st: St) -> KeyInfo:
    return await st.patch_key(key_id, body)


@key_routes.post("/v1/admin/keys/{key_id}/revoke")
async def revoke_key(key_id: str, _: Admin, st: St, svc: Svc) -> KeyInfo:
    info = await st.revoke(key_id)
    svc.emit([_revoked(key_id, info)])
    return info


def _revoked(key_id: str, info: KeyInfo) -> Event:
    return Event(
        type=EventType.KEY_REVOKED,
        severity=Severity.INFO,
        source="auth",
        subject=display_prefix(key_id),
        message=f"key {info.prefix} revoked",
    )


@key_routes.post("/v1/admin/keys/{key_id}/credits")
async def credits(key_id: str, body: CreditsChange, _: Admin, st: St) -> KeyInfo:
    return await st.change_credits(key_id, body.add, body.set)


usage_routes = APIRouter()


@usage_routes.get("/v1/admin/keys/{key_id}/usage")
async def show_key_usage(
    key_id: str, _: Admin, st: St, span: Span, granularity: Granularity = "hour"
) -> KeyUsage:
    """One key's usage, by hour or UTC day, with totals by route."""
    start, end = bounded(span.start, span.end, granularity)
    await st.get_key(key_id)  # 404 for a key that does not exist
    found = await st.usage(key_id, hours(start, end))
    return key_usage(key_id, start, end, granularity, found)


@usage_routes.get("/v1/admin/usage")
async def show_all_usage(_: Admin, st: St, span: Span) -> UsageTotals:
    """Every key's usage totals over the range (at most 31 days)."""
    start, end = bounded(span.start, span.end, "hour")
    rows = [(info, await st.usage(info.id, hours(start, end))) for info in await st.list_keys()]
    return totals(start, end, rows)


plan_routes = APIRouter()


@plan_routes.put("/v1/admin/plans/{name}")
async def put_plan(name: str, body: Plan, _: Admin, st: St) -> Plan:
    if body.name != name:
        raise Invalid("plan name in the path and the body differ")
    return await st.put_plan(body)


@plan_routes.get("/v1/admin/plans")
async def list_plans(_: Admin, st: St) -> list[Plan]:
    return await st.list_plans()


@plan_routes.get("/v1/admin/plans/{name}")
async def show_plan(name: str, _: Admin, st: St) -> Plan:
    return await st.get_plan(name)


@plan_routes.delete("/v1/admin/plans/{name}", status_code=204)
async def delete_plan(name: str, _: Admin, st: St) -> Response:
    await st.delete_plan(name)
    return Response(status_code=204)


JSON = [(b"content-type", b"application/json")]
# /v1/me: the gateway's GET /_tollgate/v1/me in AUTH_MODE=http (next to authorize, reached the
# same way: the gateways' network path to auth, never the public one)
RPC_PATHS = ("/v1/authorize", "/v1/refund", "/v1/me")
MAX_RPC_BODY = 65536


class Handler:
    """The server's handler: the two RPCs straight to the service (they run on every gateway
    request), everything else through the ASGI bridge to the FastAPI admin app."""

    def __init__(self, svc: Service, admin: FastAPI, address: tuple[str, int]) -> None:
        self.svc = svc
        self.admin = admin
        self.address = address
        # the RPCs, in a server span joined to the gateway's trace when tracing is on
        self.serve_rpc: Callable[[Incoming], Awaitable[Reply | None]] = self.rpc

    async def __call__(self, req: Incoming) -> Reply | None:
        if req.method == "POST" and req.path in RPC_PATHS and self.svc.ledger is not None:
            return await self.serve_rpc(req)
        return await asgibridge.call(self.admin, req, self.address)

    async def rpc(self, req: Incoming) -> Reply:
        try:
            data = orjson.loads(await req.read_body(MAX_RPC_BODY))
            if req.path == "/v1/authorize":
                d = await self.svc.authorize(AuthorizeRequest.model_validate(data))
                status = 503 if d.reason == "unavailable" else 200
                return Reply(status, list(JSON), orjson.dumps(to_wire(d)))
            if req.path == "/v1/me":
                d = await self.svc.me(MeRequest.model_validate(data))
                status = 503 if d.reason == "unavailable" else 200
                return Reply(status, list(JSON), orjson.dumps(to_wire(d)))
            ask = RefundRequest.model_validate(data)
            refunded = await self.svc.refund(ask.charge_id, ask.status)
            return Reply(200, list(JSON), orjson.dumps({"status": True, "refunded": refunded}))
        except (ValueError, ValidationError) as exc:  # orjson, pydantic, body size
            return _error(BadRequest(f"bad request: {exc}"[:500]))
        except AuthError as exc:  # StoreDown
            return _error(exc)


def _error(exc: AuthError) -> Reply:
    status, message = http_answer(exc)
    return Reply(status, list(JSON), error_body(message))


async def serve(
    settings: AuthSettings,
    stop: Awaitable[None],
    *,
    reuse_port: bool = False,
    on_listen: Callable[[Service, int], None] | None = None,
) -> None:
    """Run the auth service until ``stop`` resolves, then drain (requests in progress finish)."""
    svc = Service(settings)
    admin = create_admin(svc)
    tracing = setup_tracing("tollgate-auth")
    async with svc.lifespan(admin):
        handler = Handler(svc, admin, (settings.host, settings.port))
        if tracing is not None:
            handler.serve_rpc = tracing.server_spans().wrap(handler.rpc, _rpc_route)

        def listening(port: int) -> None:
            handler.address = (settings.host, port)
            if on_listen is not None:
                on_listen(svc, port)

        server = HttpServer(handler, Limits())
        await server.run(
            settings.host,
            settings.port,
            stop,
            grace_seconds=25.0,
            reuse_port=reuse_port,
            on_listen=listening,
        )
    if tracing is not None:
        tracing.shutdown()


def _rpc_route(req: Incoming) -> str:
    return req.path  # one of RPC_PATHS
