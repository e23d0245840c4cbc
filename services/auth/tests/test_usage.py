"""The usage admin API against a real redis-server, with usage written by the real script."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tollgate_auth.app import Service

from .test_app import new_key, refused

HOUR = 3600
T = 1_764_590_400  # 2025-12-01T12:00:00Z, the start of an hour
ISO = "2025-12-01T12:00:00Z"


async def spend(svc: Service, raw: str, route: str, at: int, cost: int = 1, **kw: Any) -> None:
    assert svc.ledger is not None
    d = await svc.ledger.authorize(raw, "/x", cost, "c", route=route, now_ms=at * 1000, **kw)
    assert d.allowed, d


async def test_key_usage_by_hour(admin: httpx.AsyncClient, service: Service) -> None:
    """Buckets by hour, oldest first, with counts by route and totals."""
    key = await new_key(admin, credits=100)
    await spend(service, key["key"], "eod", T + 10, cost=2)
    await spend(service, key["key"], "eod", T + 20, cost=2, cache_hit=True)
    await spend(service, key["key"], "live", T + HOUR + 5)
    r = await admin.get(f"/v1/admin/keys/{key['id']}/usage", params={"from": T, "to": T + 2 * HOUR})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [b["start"] for b in body["buckets"]] == [T, T + HOUR]
    assert body["buckets"][0]["routes"]["eod"] == {
        "requests": 2, "charged": 4, "refunded": 0, "hits": 1, "4xx": 0, "5xx": 0, "refilled": 0,
    }  # fmt: skip
    assert body["total"]["requests"] == 3
    assert body["total"]["charged"] == 5
    assert body["routes"]["live"]["requests"] == 1


async def test_key_usage_by_day(admin: httpx.AsyncClient, service: Service) -> None:
    """granularity=day sums a UTC day's hours into one bucket starting at midnight."""
    key = await new_key(admin, credits=100)
    await spend(service, key["key"], "eod", T)
    await spend(service, key["key"], "eod", T + 3 * HOUR)
    r = await admin.get(
        f"/v1/admin/keys/{key['id']}/usage",
        params={"from": "2025-12-01", "to": "2025-12-02", "granularity": "day"},
    )
    assert r.status_code == 200, r.text
    [day] = r.json()["buckets"]
    assert day["start"] == T - 12 * HOUR
    assert day["counts"]["requests"] == 2


async def test_iso_times_are_utc(admin: httpx.AsyncClient, service: Service) -> None:
    """from/to in ISO 8601 without a zone read as UTC, the same as Unix seconds."""
    key = await new_key(admin, credits=10)
    await spend(service, key["key"], "eod", T + 1)
    url = f"/v1/admin/keys/{key['id']}/usage"
    iso = await admin.get(url, params={"from": "2025-12-01T12:00:00", "to": "2025-12-01T13:00"})
    unix = await admin.get(url, params={"from": T, "to": T + HOUR})
    assert iso.json() == unix.json()
    assert iso.json()["total"]["requests"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"granularity": "week"}, "granularity"),
        ({"from": "yesterday"}, "from"),
        ({"to": "soon"}, "to"),
        ({"from": T, "to": T}, "to"),
        ({"from": T, "to": T - 1}, "to"),
        ({"from": T, "to": T + 32 * 24 * HOUR}, "to"),
        ({"from": T, "to": T + 367 * 24 * HOUR, "granularity": "day"}, "to"),
        ({"from": -86400, "to": T}, "from"),
    ],
)
async def test_bad_ranges_are_refused(
    admin: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    """A range that is malformed, empty, backwards or too long: 422 naming the field."""
    key = await new_key(admin, credits=1)
    refused(await admin.get(f"/v1/admin/keys/{key['id']}/usage", params=params), field)


async def test_usage_of_an_unknown_key_is_404(admin: httpx.AsyncClient) -> None:
    """No such key: 404 in the project's JSON shape."""
    r = await admin.get("/v1/admin/keys/nosuchkey/usage")
    assert r.status_code == 404
    assert r.json()["status"] is False


async def test_totals_of_every_key(admin: httpx.AsyncClient, service: Service) -> None:
    """/v1/admin/usage: one row per key that had usage in the range, with its totals."""
    busy = await new_key(admin, credits=100, name="busy")
    await new_key(admin, credits=100, name="idle")
    await spend(service, busy["key"], "eod", T, cost=5)
    await spend(service, busy["key"], "live", T + HOUR, cost=1)
    r = await admin.get("/v1/admin/usage", params={"from": ISO, "to": T + 2 * HOUR})
    assert r.status_code == 200, r.text
    [row] = r.json()["keys"]
    assert (row["key_id"], row["name"]) == (busy["id"], "busy")
    assert row["total"]["charged"] == 6
    assert row["total"]["requests"] == 2
    refused(await admin.get("/v1/admin/usage", params={"from": T, "to": T + 40 * 24 * HOUR}), "to")


async def test_usage_needs_the_admin_token(admin: httpx.AsyncClient) -> None:
    """Usage is admin data: no token, 401."""
    r = await admin.get("/v1/admin/usage", headers={"Authorization": ""})
    assert r.status_code == 401
