"""Plan refills through the admin API against a real redis-server: validation (422 naming the
field), the round trip of a plan, a key's next refill, and refills in the usage API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tollgate_auth.app import Service
from tollgate_common.ledger.layout import id_key, record_key
from tollgate_common.ledger.refill import Refill, next_refill, period_start

from .test_app import new_key, refused

MONTHLY = {
    "amount": 100,
    "interval": "monthly",
    "day_of_month": 31,
    "mode": "topup",
    "ceiling": 500,
}


async def plan(admin: httpx.AsyncClient, refill: dict[str, Any] | None) -> httpx.Response:
    return await admin.put("/v1/admin/plans/p", json={"name": "p", "refill": refill})


@pytest.mark.parametrize(
    ("refill", "field"),
    [
        ({"amount": 0, "interval": "daily"}, "amount"),
        ({"amount": 10**16, "interval": "daily"}, "amount"),
        ({"amount": 1, "interval": "weekly"}, "interval"),
        ({"amount": 1, "interval": "monthly", "day_of_month": 0}, "day_of_month"),
        ({"amount": 1, "interval": "monthly", "day_of_month": 32}, "day_of_month"),
        ({"amount": 1, "interval": "daily", "day_of_month": 3}, "day_of_month"),
        ({"amount": 1, "interval": "daily", "mode": "topup"}, "ceiling"),
        ({"amount": 1, "interval": "daily", "mode": "topup", "ceiling": 0}, "ceiling"),
        ({"amount": 1, "interval": "daily", "ceiling": 5}, "ceiling"),
        ({"amount": 1, "interval": "daily", "mode": "reset"}, "mode"),
        ({"amount": 1, "interval": "daily", "extra": 1}, "extra"),
        ({"interval": "daily"}, "amount"),
    ],
)
async def test_a_refill_is_validated(
    admin: httpx.AsyncClient, refill: dict[str, Any], field: str
) -> None:
    """Out-of-range or inconsistent refills: 422 naming the field, nothing stored."""
    refused(await plan(admin, refill), field)
    assert (await admin.get("/v1/admin/plans/p")).status_code == 404


async def test_a_plans_refill_round_trips(admin: httpx.AsyncClient) -> None:
    """PUT then GET: the refill comes back as given; a plan put again without one has none."""
    r = await plan(admin, MONTHLY)
    assert r.status_code == 200, r.text
    assert (await admin.get("/v1/admin/plans/p")).json()["refill"] == MONTHLY
    await plan(admin, None)
    assert (await admin.get("/v1/admin/plans/p")).json()["refill"] is None


async def test_a_new_key_shows_its_next_refill(admin: httpx.AsyncClient) -> None:
    """A key created on a refill plan starts at the current period: next_refill is the next
    boundary; a key without a refill plan has none."""
    await plan(admin, {"amount": 5, "interval": "hourly"})
    key = await new_key(admin, credits=1, plan="p")
    now = int(time.time() * 1000)
    hourly = Refill(amount=5, interval="hourly")
    assert key["next_refill"] in (next_refill(hourly, now) / 1000, period_start(hourly, now) / 1000)
    assert (await new_key(admin, credits=1))["next_refill"] is None


async def test_a_due_refill_shows_and_usage_counts_it(
    admin: httpx.AsyncClient, service: Service
) -> None:
    """A key whose refill is due shows it due (the period's start); the next request applies it,
    the usage API counts it under that request's route."""
    await plan(admin, {"amount": 5, "interval": "hourly"})
    key = await new_key(admin, credits=1, plan="p")
    assert service.ledger is not None
    now = int(time.time() * 1000)
    # as if the key's last refill were an hour back: the current period's refill is due
    hashed = await service.redis.get(id_key(key["id"]))
    await service.redis.hset(record_key(key["id"], hashed.decode()), "refilled_at", 0)
    shown = (await admin.get(f"/v1/admin/keys/{key['id']}")).json()
    assert shown["next_refill"] == period_start(Refill(amount=5, interval="hourly"), now) / 1000
    d = await service.ledger.authorize(key["key"], "/x", 1, "c", route="eod")
    assert (d.refilled, d.credits_remaining) == (5, 5)
    r = await admin.get(f"/v1/admin/keys/{key['id']}/usage")
    assert r.json()["routes"]["eod"]["refilled"] == 5
    assert r.json()["total"]["refilled"] == 5


async def test_moving_a_key_to_a_refill_plan_is_no_refill(
    admin: httpx.AsyncClient, service: Service
) -> None:
    """A key patched onto a refill plan starts at its current period: no refill right away."""
    key = await new_key(admin, credits=1)
    await plan(admin, {"amount": 5, "interval": "daily"})
    r = await admin.patch(f"/v1/admin/keys/{key['id']}", json={"plan": "p"})
    assert r.json()["next_refill"] > time.time()
    assert service.ledger is not None
    d = await service.ledger.authorize(key["key"], "/x", 1, "c")
    assert (d.refilled, d.credits_remaining) == (0, 0)
