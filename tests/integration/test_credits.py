"""Credits and rate limits through the whole stack: 2 gateways, 2 auth services, 1 Redis."""

from __future__ import annotations

import asyncio
import time

import httpx
import redis

from tollgate_common.contracts.events import STREAM_KEY

from .conftest import Stack


async def hammer(stack: Stack, path: str, key: str, n: int) -> list[httpx.Response]:
    """n concurrent requests spread over both gateways."""
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.get(f"{stack.gateways[i % 2].url}/api/v1{path}", params={"api_key": key})
                for i in range(n)
            )
        )


def test_concurrent_requests_spend_credits_exactly(stack: Stack) -> None:
    """N=80 concurrent requests on C=30 credits: exactly 30 succeed, 50 get 402, balance 0."""
    key_id, key = stack.new_key(30)
    responses = asyncio.run(hammer(stack, "/live/AAPL", key, 80))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 30
    assert codes.count(402) == 50
    assert stack.credits(key_id) == 0
    assert all(r.json()["status"] is False for r in responses if r.status_code == 402)


def test_cache_hits_are_charged(stack: Stack) -> None:
    """A cache HIT costs credits like any request."""
    key_id, key = stack.new_key(5)
    gw = stack.gateways[0].url
    r1 = httpx.get(f"{gw}/api/v1/eod/CHRG", params={"api_key": key})
    r2 = httpx.get(f"{gw}/api/v1/eod/CHRG", params={"api_key": key})
    assert r2.headers["x-cache"] == "HIT"
    assert r1.headers["x-credits-remaining"] == "4"
    assert r2.headers["x-credits-remaining"] == "3"
    assert stack.credits(key_id) == 3


def test_rate_limit_holds_across_replicas(stack: Stack) -> None:
    """A burst of 5 is 5 in total across both gateways and both auth services; 429s say when."""
    with stack.admin() as c:
        c.put("/v1/admin/plans/tight", json={"name": "tight", "rate": 0.05, "burst": 5})
    _, key = stack.new_key(100, plan="tight")
    responses = asyncio.run(hammer(stack, "/live/RL", key, 30))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 5
    assert codes.count(429) == 25
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-limit"] == "5"


def test_missing_unknown_revoked_keys(stack: Stack) -> None:
    """No key 401, unknown key 401, revoked key 403 on every gateway at once."""
    gw = stack.gateways[0].url
    assert httpx.get(f"{gw}/api/v1/live/X").status_code == 401
    r = httpx.get(f"{gw}/api/v1/live/X", params={"api_key": "tg_aaaaaaaa_" + "x" * 43})
    assert r.status_code == 401
    assert r.json() == {"status": False, "message": "unknown API key"}
    key_id, key = stack.new_key(10)
    assert httpx.get(f"{gw}/api/v1/live/X", params={"api_key": key}).status_code == 200
    with stack.admin() as c:
        c.post(f"/v1/admin/keys/{key_id}/revoke").raise_for_status()
    for g in stack.gateways:
        assert httpx.get(f"{g.url}/api/v1/live/X", params={"api_key": key}).status_code == 403


def test_failed_upstream_refunds_the_charge(stack: Stack) -> None:
    """All upstreams failing: 502, and the credits come back."""
    key_id, key = stack.new_key(10)
    r = httpx.get(f"{stack.gateways[1].url}/api/v1/broken/X", params={"api_key": key})
    assert r.status_code == 502
    deadline = time.monotonic() + 5
    while stack.credits(key_id) != 10:
        assert time.monotonic() < deadline, "charge was not refunded"
        time.sleep(0.05)


def test_credit_events_reach_the_stream(stack: Stack) -> None:
    """Spending the last credit appends credits.exhausted for the notifier."""
    key_id, key = stack.new_key(1)
    httpx.get(f"{stack.gateways[0].url}/api/v1/live/EV", params={"api_key": key})
    client = redis.Redis.from_url(stack.redis.url)
    deadline = time.monotonic() + 5
    while True:
        events = [f for _, f in client.xrange(STREAM_KEY)]
        if any(
            f[b"type"] == b"credits.exhausted" and key_id.encode() in f[b"subject"] for f in events
        ):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert all(key.encode() not in b"".join(f.values()) for f in events)  # no secret leaked


def sample(url: str, name: str, **labels: str) -> float:
    """One sample of a service's /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def test_credits_are_metered_per_route(stack: Stack) -> None:
    """Credits the ledger debited and gave back show per route on the gateway that served."""
    gw = stack.gateways[0].url
    charged = "tollgate_gateway_credits_charged_total"
    refunded = "tollgate_gateway_credits_refunded_total"
    before = {
        r: (sample(gw, charged, route=r), sample(gw, refunded, route=r))
        for r in ("default/live", "default/broken")
    }
    landed = sample(gw, "tollgate_gateway_refunds_total", result="refunded")
    _, key = stack.new_key(10)
    assert httpx.get(f"{gw}/api/v1/live/MTR", params={"api_key": key}).status_code == 200
    assert httpx.get(f"{gw}/api/v1/broken/MTR", params={"api_key": key}).status_code == 502
    deadline = time.monotonic() + 5
    while sample(gw, "tollgate_gateway_refunds_total", result="refunded") == landed:
        assert time.monotonic() < deadline, "the refund was not counted"
        time.sleep(0.05)
    assert sample(gw, charged, route="default/live") == before["default/live"][0] + 1
    assert sample(gw, refunded, route="default/live") == before["default/live"][1]
    assert sample(gw, charged, route="default/broken") == before["default/broken"][0] + 3
    assert sample(gw, refunded, route="default/broken") == before["default/broken"][1] + 3


def test_rate_limits_are_counted_per_plan(stack: Stack) -> None:
    """A 429 is counted under the route and the key's plan."""
    with stack.admin() as c:
        c.put("/v1/admin/plans/metered", json={"name": "metered", "rate": 0.01, "burst": 1})
    _, key = stack.new_key(100, plan="metered")
    gw = stack.gateways[0].url
    name = "tollgate_gateway_rate_limited_total"
    before = sample(gw, name, route="default/live", plan="metered")
    codes = [
        httpx.get(f"{gw}/api/v1/live/PL", params={"api_key": key}).status_code for _ in range(3)
    ]
    assert codes == [200, 429, 429]
    assert sample(gw, name, route="default/live", plan="metered") == before + 2
