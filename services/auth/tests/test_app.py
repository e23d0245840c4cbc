"""The admin API against a real redis-server: bounds, plans in use, the admin token, readiness."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tollgate_auth.app import Service
from tollgate_testkit.redis_server import RedisServer

from .conftest import running_admin

# Python's json (which FastAPI parses with) reads these non-standard literals.
MAX_CREDITS = 10**15  # the most a balance may hold
JSON = {"content-type": "application/json"}
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e308", "-1e308"]


def refused(r: httpx.Response, field: str) -> None:
    """A clear 422 in the project's JSON shape, naming the field."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["status"] is False
    assert field in body["message"]


async def new_key(admin: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await admin.post("/v1/admin/keys", json=body)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def authorize(svc: Service, raw: str) -> str:
    """The reason the ledger gives for one request of cost 1 (the real authorize script)."""
    assert svc.ledger is not None
    o = await svc.ledger.authorize(raw, "/x", 1, "127.0.0.1")
    return o.reason


@pytest.mark.parametrize("value", NON_FINITE)
async def test_create_refuses_non_finite_expiry(admin: httpx.AsyncClient, value: str) -> None:
    """expires_at of NaN, +-Infinity or +-1e308 on create: 422 naming the field, not a 500."""
    r = await admin.post("/v1/admin/keys", content=f'{{"expires_at": {value}}}', headers=JSON)
    refused(r, "expires_at")


@pytest.mark.parametrize("value", NON_FINITE)
async def test_patch_refuses_non_finite_expiry(admin: httpx.AsyncClient, value: str) -> None:
    """expires_at of NaN, +-Infinity or +-1e308 on patch: 422 naming the field, not a 500."""
    key = await new_key(admin, credits=1)
    r = await admin.patch(
        f"/v1/admin/keys/{key['id']}", content=f'{{"expires_at": {value}}}', headers=JSON
    )
    refused(r, "expires_at")


async def test_expiry_in_a_sane_range_is_kept(admin: httpx.AsyncClient) -> None:
    """A real epoch round-trips; 0 on patch clears it."""
    at = time.time() + 86400
    key = await new_key(admin, expires_at=at)
    assert key["expires_at"] == pytest.approx(at, abs=0.001)
    r = await admin.patch(f"/v1/admin/keys/{key['id']}", json={"expires_at": 0})
    assert r.json()["expires_at"] is None


@pytest.mark.parametrize("amount", [10**20, -(10**20), MAX_CREDITS + 1, -(MAX_CREDITS + 1)])
async def test_credits_add_out_of_range(admin: httpx.AsyncClient, amount: int) -> None:
    """credits.add beyond the ledger's range: 422 naming the field, not a 503."""
    key = await new_key(admin, credits=5)
    r = await admin.post(f"/v1/admin/keys/{key['id']}/credits", json={"add": amount})
    refused(r, "add")


async def test_credits_add_cannot_pass_the_maximum(admin: httpx.AsyncClient) -> None:
    """A top-up that would take the balance past the maximum is refused; the balance stays."""
    key = await new_key(admin, credits=MAX_CREDITS - 1)
    r = await admin.post(f"/v1/admin/keys/{key['id']}/credits", json={"add": 2})
    refused(r, "add")
    assert (await admin.get(f"/v1/admin/keys/{key['id']}")).json()["credits"] == MAX_CREDITS - 1


@pytest.mark.parametrize("amount", [10**19, MAX_CREDITS + 1])
async def test_credits_set_out_of_range(
    admin: httpx.AsyncClient, service: Service, amount: int
) -> None:
    """credits.set beyond the ledger's range is refused (it made every later request a 503)."""
    key = await new_key(admin, credits=5)
    r = await admin.post(f"/v1/admin/keys/{key['id']}/credits", json={"set": amount})
    refused(r, "set")
    assert await authorize(service, key["key"]) == "ok"


async def test_the_maximum_balance_is_served(admin: httpx.AsyncClient, service: Service) -> None:
    """At the maximum balance the ledger still charges exactly."""
    key = await new_key(admin, credits=MAX_CREDITS)
    assert await authorize(service, key["key"]) == "ok"
    assert (await admin.get(f"/v1/admin/keys/{key['id']}")).json()["credits"] == MAX_CREDITS - 1


async def test_create_refuses_credits_out_of_range(admin: httpx.AsyncClient) -> None:
    """credits on create beyond the maximum: 422 naming the field."""
    refused(await admin.post("/v1/admin/keys", json={"credits": MAX_CREDITS + 1}), "credits")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate", -1),
        ("rate", 1e308),
        ("rate", 1e-300),
        ("burst", 0),
        ("burst", 10**20),
        ("costs", {"/x": -1}),
        ("costs", {"/x": 10**20}),
    ],
)
async def test_plan_numbers_are_bounded(admin: httpx.AsyncClient, field: str, value: Any) -> None:
    """Plan rates, bursts and costs outside what the ledger handles: 422 naming the field."""
    r = await admin.put("/v1/admin/plans/p", json={"name": "p", field: value})
    refused(r, field)


async def test_plan_rate_non_finite(admin: httpx.AsyncClient) -> None:
    """A NaN rate is refused, not stored (it read back as unlimited)."""
    r = await admin.put("/v1/admin/plans/p", content='{"name": "p", "rate": NaN}', headers=JSON)
    refused(r, "rate")


async def test_slowest_plan_is_served(admin: httpx.AsyncClient, service: Service) -> None:
    """The slowest rate and largest burst allowed still authorize (no Redis error)."""
    r = await admin.put(
        "/v1/admin/plans/slow", json={"name": "slow", "rate": 0.001, "burst": 10_000}
    )
    assert r.status_code == 200, r.text
    key = await new_key(admin, credits=5, plan="slow")
    assert await authorize(service, key["key"]) == "ok"


async def test_deleting_a_plan_in_use_is_refused(admin: httpx.AsyncClient) -> None:
    """A plan that live keys use cannot be deleted: 409 saying how many keys use it."""
    await admin.put("/v1/admin/plans/gold", json={"name": "gold", "rate": 1, "burst": 1})
    await new_key(admin, plan="gold")
    await new_key(admin, plan="gold")
    r = await admin.delete("/v1/admin/plans/gold")
    assert r.status_code == 409
    assert r.json()["status"] is False
    assert "2 keys" in r.json()["message"]
    assert (await admin.get("/v1/admin/plans/gold")).status_code == 200


async def test_plan_deletable_once_unused(admin: httpx.AsyncClient) -> None:
    """Moved off the plan or revoked, keys no longer hold it: deletion succeeds."""
    await admin.put("/v1/admin/plans/gold", json={"name": "gold"})
    await admin.put("/v1/admin/plans/free", json={"name": "free"})
    a = await new_key(admin, plan="gold")
    b = await new_key(admin, plan="gold")
    await admin.patch(f"/v1/admin/keys/{a['id']}", json={"plan": "free"})
    await admin.post(f"/v1/admin/keys/{b['id']}/revoke")
    assert (await admin.delete("/v1/admin/plans/gold")).status_code == 204
    assert (await admin.get("/v1/admin/plans/gold")).status_code == 404


async def test_missing_and_wrong_admin_token_differ(admin: httpx.AsyncClient) -> None:
    """No token: 401 "missing admin token"; a wrong one: 401 "invalid admin token"."""
    missing = await admin.get("/v1/admin/keys", headers={"Authorization": ""})
    wrong = await admin.get("/v1/admin/keys", headers={"Authorization": "Bearer nope-nope"})
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert "missing admin token" in missing.json()["message"]
    assert "invalid admin token" in wrong.json()["message"]
    assert missing.json()["status"] is False
    assert wrong.json()["status"] is False


async def test_admin_survives_a_redis_restart(redis_url: str, redis_server: RedisServer) -> None:
    """Redis restarted between two calls: the next admin call is served (one retry), not a 503."""
    async with running_admin(redis_url) as (admin, _):
        assert (await admin.get("/v1/admin/keys")).status_code == 200
        redis_server.restart()
        r = await admin.get("/v1/admin/keys")
        assert r.status_code == 200, r.text


async def test_readyz_checks_the_authorize_client(
    redis_url: str, redis_server: RedisServer
) -> None:
    """/readyz answers through both clients that serve requests: the lean one of authorize too."""
    async with running_admin(redis_url) as (admin, svc):
        assert svc.ledger is not None
        lean = svc.ledger.redis
        assert (await admin.get("/readyz")).status_code == 200
        redis_server.stop()
        try:
            r = await admin.get("/readyz")
            assert r.status_code == 503
            assert r.json()["status"] is False
        finally:
            redis_server.restart()
        assert (await admin.get("/readyz")).status_code == 200
        assert lean._conn is not None
        assert not lean._conn.lost  # readiness reconnected the lean client
