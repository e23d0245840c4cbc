"""DELETE /v1/admin/cache on the real admin app against a real redis-server."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis

from tollgate_common.contracts.cachekeys import entry_key


async def test_purge_deletes_a_route_prefix(admin: httpx.AsyncClient, redis_url: str) -> None:
    """Only the route's entries under the prefix go; the answer counts them."""
    r = aioredis.Redis.from_url(redis_url)
    try:
        gone = [
            entry_key("GET", "ns/eod", "/eod/AAPL", []),
            entry_key("GET", "ns/eod", "/eod/AB", []),
        ]
        kept = [entry_key("GET", "ns/eod", "/eod/MSFT", []), entry_key("GET", "ns/x", "/eod/A", [])]
        for k in [*gone, *kept]:  # one key per command: the entries hash to many slots
            await r.set(k, b"v")
        resp = await admin.delete("/v1/admin/cache", params={"route": "ns/eod", "prefix": "/eod/A"})
        assert resp.status_code == 200
        assert resp.json() == {"status": True, "route": "ns/eod", "prefix": "/eod/A", "deleted": 2}
        assert sum([await r.exists(k) for k in gone]) == 0
        assert sum([await r.exists(k) for k in kept]) == 2
        whole = await admin.delete("/v1/admin/cache", params={"route": "ns/eod"})
        assert whole.json()["deleted"] == 1
    finally:
        await r.aclose()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "route"),
        ({"route": "eod"}, "route"),
        ({"route": "ns/eod", "prefix": "eod"}, "prefix"),
        ({"route": "ns/eod", "prefix": "/" + "a" * 5000}, "prefix"),
        ({"route": "ns/eod", "pathPrefix": "/eod"}, "pathPrefix"),
    ],
)
async def test_purge_refuses_bad_input_with_422(
    admin: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    """A missing or malformed route or prefix, or an unknown parameter: 422 naming it."""
    resp = await admin.delete("/v1/admin/cache", params=params)
    assert resp.status_code == 422
    body = resp.json()
    assert body["status"] is False
    assert field in body["message"]


async def test_purge_needs_the_admin_token(admin: httpx.AsyncClient) -> None:
    """Without the admin token: 401, nothing purged."""
    resp = await admin.delete(
        "/v1/admin/cache", params={"route": "ns/eod"}, headers={"Authorization": ""}
    )
    assert resp.status_code == 401
    assert resp.json()["status"] is False
