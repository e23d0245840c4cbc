"""The auth service: the authorize RPC on a lean raw ASGI path (called on every gateway request),
the admin API and health on FastAPI (with OpenAPI docs at /docs).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from tollgate_auth.decisions import decision
from tollgate_auth.errors import AuthError, StoreDown, Unauthorized
from tollgate_auth.keys import display_prefix, same_token
from tollgate_auth.metrics import Metrics
from tollgate_auth.models import (
    AuthorizeRequest,
    CreditsChange,
    Decision,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyPatch,
    Plan,
    RefundRequest,
)
from tollgate_auth.settings import AuthSettings
from tollgate_auth.store import Store
from tollgate_common.credits import events_for
from tollgate_common.events import Event, EventType, Severity, publish
from tollgate_common.logging import configure_logging
from tollgate_common.redis import create_redis
from tollgate_common.resp import LeanRedis

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class Service:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.admin_token = settings.admin_token or "dev-" + secrets.token_urlsafe(24)
        self.metrics = Metrics()
        self.redis: Any = None
        self.store: Store | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        self.redis = create_redis(self.settings.redis_url)
        # authorize/refund run on every gateway request: the lean client costs about half of
        # redis-py's CPU per round trip (tollgate_common/resp.py has the numbers).
        lean = LeanRedis(self.settings.redis_url)
        self.store = Store(self.redis, self.settings.key_pepper, hot=lean)
        if not self.settings.admin_token:
            log.warning("dev mode: generated admin token %s", self.admin_token)
        gc.collect()
        gc.freeze()  # start-up objects out of the collector's sight: fewer p99 stalls
        try:
            yield
        finally:
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            await lean.aclose()
            await self.redis.aclose()

    def emit(self, events: list[Event]) -> None:
        """Append events off the request path; a failure is logged, never raised."""
        for event in events:
            task = asyncio.ensure_future(self._publish(event))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _publish(self, event: Event) -> None:
        try:
            await publish(self.redis, event)
        except REDIS_ERRORS as exc:
            log.warning("event %s not appended: %r", event.type, exc)

    async def authorize(self, req: AuthorizeRequest) -> Decision:
        assert self.store is not None
        s = self.settings
        started = time.perf_counter()
        try:
            result = await self.store.authorize(
                req.key,
                req.path,
                req.cost,
                req.client,
                charge_ttl=s.charge_ttl_seconds,
                low_threshold=s.credits_low_threshold,
                invalid_window=s.invalid_key_window_seconds,
            )
        except REDIS_ERRORS as exc:
            self.metrics.store_errors.inc()
            log.error("redis unavailable for authorize: %r", exc)
            return Decision(allowed=False, reason="unavailable", message="credit store down")
        d = decision(result)
        self.metrics.decisions.labels(d.reason).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        events = events_for(result, req.route, req.client, s.invalid_key_burst, "auth")
        if events:
            self.emit(events)
        return d

    async def refund(self, charge_id: str) -> bool:
        assert self.store is not None
        try:
            left = await self.store.refund(charge_id)
        except REDIS_ERRORS as exc:
            self.metrics.store_errors.inc()
            raise StoreDown("credit store unavailable") from exc
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
    given = request.headers.get("authorization", "")
    token = given[7:] if given.lower().startswith("bearer ") else ""
    if not token or not same_token(token, _service(request).admin_token):
        raise Unauthorized("admin token required: Authorization: Bearer <token>")


# Module level: FastAPI resolves these string annotations in the module's namespace.
Admin = Annotated[None, Depends(_require_admin)]
St = Annotated[Store, Depends(_store)]


def create_admin(svc: Service) -> FastAPI:
    admin = FastAPI(
        title="Tollgate auth", lifespan=svc.lifespan, description="API keys, plans and credits."
    )

    @admin.exception_handler(AuthError)
    async def auth_error(_req: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"status": False, "message": exc.message}, exc.status)

    @admin.exception_handler(HTTPException)
    async def http_error(_req: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"status": False, "message": str(exc.detail)}, exc.status_code)

    @admin.exception_handler(RedisError)
    async def redis_error(_req: Request, exc: RedisError) -> JSONResponse:
        return JSONResponse({"status": False, "message": "credit store unavailable"}, 503)

    from fastapi.exceptions import RequestValidationError

    @admin.exception_handler(RequestValidationError)
    async def invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        msg = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"status": False, "message": msg}, 422)

    admin.state.service = svc

    @admin.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"status": True}

    @admin.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            await svc.redis.ping()
        except REDIS_ERRORS:
            return JSONResponse({"status": False, "message": "redis unreachable"}, 503)
        return JSONResponse({"status": True})

    @admin.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @admin.post("/v1/admin/keys", status_code=201)
    async def create_key(body: KeyCreate, _: Admin, st: St) -> KeyCreated:
        created = await st.create_key(body)
        log.info(
            "key %s created (plan %r, %d credits)", created.prefix, created.plan, created.credits
        )
        return created

    @admin.get("/v1/admin/keys")
    async def list_keys(_: Admin, st: St) -> list[KeyInfo]:
        return await st.list_keys()

    @admin.get("/v1/admin/keys/{key_id}")
    async def show_key(key_id: str, _: Admin, st: St) -> KeyInfo:
        return await st.get_key(key_id)

    @admin.patch("/v1/admin/keys/{key_id}")
    async def patch_key(key_id: str, body: KeyPatch, _: Admin, st: St) -> KeyInfo:
        return await st.patch_key(key_id, body)

    @admin.post("/v1/admin/keys/{key_id}/revoke")
    async def revoke_key(key_id: str, _: Admin, st: St) -> KeyInfo:
        info = await st.revoke(key_id)
        svc.emit(
            [
                Event(
                    type=EventType.KEY_REVOKED,
                    severity=Severity.INFO,
                    source="auth",
                    subject=display_prefix(key_id),
                    message=f"key {info.prefix} revoked",
                )
            ]
        )
        return info

    @admin.post("/v1/admin/keys/{key_id}/credits")
    async def credits(key_id: str, body: CreditsChange, _: Admin, st: St) -> KeyInfo:
        return await st.change_credits(key_id, body.add, body.set)

    @admin.put("/v1/admin/plans/{name}")
    async def put_plan(name: str, body: Plan, _: Admin, st: St) -> Plan:
        if body.name != name:
            raise HTTPException(422, "plan name in the path and the body differ")
        return await st.put_plan(body)

    @admin.get("/v1/admin/plans")
    async def list_plans(_: Admin, st: St) -> list[Plan]:
        return await st.list_plans()

    @admin.get("/v1/admin/plans/{name}")
    async def show_plan(name: str, _: Admin, st: St) -> Plan:
        return await st.get_plan(name)

    @admin.delete("/v1/admin/plans/{name}", status_code=204)
    async def delete_plan(name: str, _: Admin, st: St) -> Response:
        await st.delete_plan(name)
        return Response(status_code=204)

    return admin


async def _json(receive: Receive, limit: int = 65536) -> Any:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            raise ValueError("body too large")
        if not message.get("more_body"):
            return orjson.loads(body)


async def _reply(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(settings: AuthSettings) -> Any:
    """The ASGI app: POST /v1/authorize and /v1/refund raw; the rest FastAPI."""
    svc = Service(settings)
    admin = create_admin(svc)

    async def rpc(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        try:
            data = await _json(receive)
            if path == "/v1/authorize":
                d = await svc.authorize(AuthorizeRequest.model_validate(data))
                await _reply(
                    send, 503 if d.reason == "unavailable" else 200, d.model_dump(exclude_none=True)
                )
            else:
                refunded = await svc.refund(RefundRequest.model_validate(data).charge_id)
                await _reply(send, 200, {"status": True, "refunded": refunded})
        except (ValueError, ValidationError) as exc:  # orjson and pydantic errors
            await _reply(send, 400, {"status": False, "message": f"bad request: {exc}"[:500]})
        except StoreDown as exc:
            await _reply(send, 503, {"status": False, "message": exc.message})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in ("/v1/authorize", "/v1/refund")
            and svc.store is not None
        ):
            await rpc(scope, receive, send)
        else:
            await admin(scope, receive, send)

    app.service = svc  # type: ignore[attr-defined]
    return app


def main_app() -> Any:
    settings = AuthSettings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
