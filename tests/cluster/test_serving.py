"""Requests through the gateway Service to the project's images running as pods."""

from __future__ import annotations

import asyncio

import httpx

from tollgate_testkit.cluster import Cluster
from tollgate_testkit.prometheus import metric


def get(cluster: Cluster, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{cluster.gateway_url}/api/v1{path}", params={"api_key": key}, timeout=10)


async def burst(cluster: Cluster, paths: list[str], key: str) -> list[httpx.Response]:
    # One connection per request, so kube-proxy spreads them over both gateway pods.
    async def one(path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=20) as c:
            return await c.get(f"{cluster.gateway_url}/api/v1{path}", params={"api_key": key})

    return await asyncio.gather(*(one(p) for p in paths))


def requests_served(cluster: Cluster) -> dict[str, float]:
    """tollgate_gateway_requests_total per gateway pod, read from each pod's admin port."""
    return {
        pod["metadata"]["name"]: metric(
            f"http://{pod['status']['podIP']}:9090", "tollgate_gateway_requests_total"
        )
        for pod in cluster.ready_pods("gateway")
    }


def test_miss_then_hit(cluster: Cluster, eod: str, symbol: str) -> None:
    key_id, key = cluster.new_key(10)
    first, second = get(cluster, f"{eod}/{symbol}", key), get(cluster, f"{eod}/{symbol}", key)
    assert first.status_code == 200, first.text
    assert first.headers["x-cache"] == "MISS"
    assert first.json()["status"] is True
    assert second.status_code == 200
    assert second.headers["x-cache"] == "HIT"
    assert second.content == first.content
    assert cluster.credits(key_id) == 8


def test_unknown_key_and_empty_balance(cluster: Cluster, eod: str, symbol: str) -> None:
    r = get(cluster, f"{eod}/{symbol}", "tg_aaaaaaaa_" + "x" * 43)
    assert r.status_code == 401
    assert r.json() == {"status": False, "message": "unknown API key"}
    _, key = cluster.new_key(1)
    assert get(cluster, f"{eod}/{symbol}", key).status_code == 200
    r = get(cluster, f"{eod}/{symbol}", key)
    assert r.status_code == 402
    assert r.json()["status"] is False


def test_rate_limit_holds_across_replicas(cluster: Cluster, eod: str, symbol: str) -> None:
    with cluster.admin() as c:
        c.put("/v1/admin/plans/tight", json={"name": "tight", "rate": 0.05, "burst": 5})
    _, key = cluster.new_key(100, plan="tight")
    responses = asyncio.run(burst(cluster, [f"{eod}/{symbol}"] * 30, key))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 5, codes
    assert codes.count(429) == 25
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1


def test_exactly_min_n_c_over_two_gateways_and_two_auths(
    cluster: Cluster, eod: str, symbol: str
) -> None:
    """N concurrent requests on C credits: exactly C succeed, whichever pods serve them."""
    assert len(cluster.ready_pods("gateway")) == 2
    assert len(cluster.ready_pods("auth")) == 2
    before = requests_served(cluster)
    n, c = 60, 17
    key_id, key = cluster.new_key(c)
    responses = asyncio.run(burst(cluster, [f"{eod}/{symbol}{i % 5}" for i in range(n)], key))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == c, codes
    assert codes.count(402) == n - c
    assert cluster.credits(key_id) == 0
    after = requests_served(cluster)
    assert all(after[pod] > before.get(pod, 0) for pod in after), (before, after)
