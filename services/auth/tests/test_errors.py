"""Auth's errors become HTTP in one place (errors.http_answer): the admin app's one handler and
the RPCs answer each with its status and the JSON ``{"status": false, "message": ...}``."""

from __future__ import annotations

import httpx
import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.exceptions import HTTPException

from tollgate_auth.app import Handler, Service
from tollgate_auth.errors import (
    HTTP_ERRORS,
    BadRequest,
    Conflict,
    Invalid,
    NotFound,
    StoreDown,
    Unauthorized,
    http_answer,
)
from tollgate_common.http.exchange import Incoming, Reply
from tollgate_testkit.redis_server import RedisServer

from .conftest import running_admin


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (BadRequest("b"), 400),
        (Unauthorized("u"), 401),
        (NotFound("n"), 404),
        (Conflict("c"), 409),
        (Invalid("i"), 422),
        (StoreDown("s"), 503),
    ],
)
def test_an_auth_error_answers_with_its_status_and_message(exc: Exception, status: int) -> None:
    """Each AuthError: its own status, its message as given."""
    assert http_answer(exc) == (status, str(exc))


def test_the_frameworks_errors_are_answered_too() -> None:
    """A validation error names the field (422); Starlette's 404 keeps its status; a Redis error
    that escaped a handler is a 503 saying the store is down."""
    invalid = RequestValidationError([{"loc": ("body", "credits"), "msg": "too big"}])
    assert http_answer(invalid) == (422, "body.credits: too big")
    assert http_answer(HTTPException(404, "Not Found")) == (404, "Not Found")
    assert http_answer(RedisConnectionError("gone")) == (503, "credit store unavailable")
    assert all(isinstance(e, HTTP_ERRORS) for e in (invalid, RedisConnectionError("gone")))


async def test_admin_errors_are_json_with_their_status(redis_url: str) -> None:
    """A plan whose name differs from the path (422), an unknown path (404), an unknown key
    (404): each the project's JSON shape."""
    async with running_admin(redis_url) as (admin, _):
        plan = {"name": "gold", "rate": 1, "burst": 1}
        differ = await admin.put("/v1/admin/plans/silver", json=plan)
        nowhere = await admin.get("/v1/admin/nowhere")
        unknown = await admin.get("/v1/admin/keys/0123456789abcdef")
    assert (differ.status_code, differ.json()) == (
        422,
        {"status": False, "message": "plan name in the path and the body differ"},
    )
    assert (nowhere.status_code, nowhere.json()) == (404, {"status": False, "message": "Not Found"})
    assert unknown.status_code == 404
    assert unknown.json()["status"] is False


async def test_readyz_names_the_clients_that_are_down(
    redis_url: str, redis_server: RedisServer
) -> None:
    """Redis gone: /readyz is a 503 naming both clients, in the same JSON shape."""
    async with running_admin(redis_url) as (admin, _):
        redis_server.stop()
        try:
            r = await admin.get("/readyz")
        finally:
            redis_server.restart()
    assert r.status_code == 503
    assert r.json() == {"status": False, "message": "redis unreachable (lean, admin client)"}


def _rpc(path: str, body: bytes) -> Incoming:
    async def read_body(_limit: int) -> bytes:
        return body

    async def disconnected() -> None:
        return None

    return Incoming(
        "POST", path, path.encode(), b"", [], "10.0.0.1", "http", read_body, disconnected
    )


async def _answer(svc: Service, req: Incoming) -> tuple[int, object]:
    reply: Reply = await Handler(svc, None, ("127.0.0.1", 0)).rpc(req)  # type: ignore[arg-type]
    assert (b"content-type", b"application/json") in reply.headers
    return reply.status, orjson.loads(reply.body)


async def test_rpc_errors_use_the_same_translation(
    redis_url: str, redis_server: RedisServer
) -> None:
    """A body that is not JSON: 400 "bad request"; a refund with Redis gone: 503 "credit store
    unavailable"; both in the admin app's JSON shape."""
    async with running_admin(redis_url) as (_, svc):
        bad = await _answer(svc, _rpc("/v1/authorize", b"{not json"))
        redis_server.stop()
        try:
            down = await _answer(svc, _rpc("/v1/refund", b'{"charge_id": "c1", "status": "5xx"}'))
        finally:
            redis_server.restart()
    assert bad[0] == 400
    assert isinstance(bad[1], dict)
    assert bad[1]["status"] is False
    assert str(bad[1]["message"]).startswith("bad request: ")
    assert down == (503, {"status": False, "message": "credit store unavailable"})


def test_an_httpx_error_is_not_one_of_ours() -> None:
    """Only the listed kinds are translated: anything else stays a server error (500)."""
    assert not isinstance(httpx.ConnectError("x"), HTTP_ERRORS)
