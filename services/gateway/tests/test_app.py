"""The gateway's /readyz against a real redis-server: what it checks and what decides it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import redis

from tollgate_common.contracts.routes import TABLE_CHANNEL, TABLE_KEY, RouteTable
from tollgate_testkit.redis_server import RedisServer

from .conftest import RunningGateway

Gws = Callable[..., RunningGateway]


def publish_empty(redis_url: str, version: int = 1) -> None:
    """What the operator publishes on a cluster with no ApiBackend: a table with no routes."""
    client = redis.Redis.from_url(redis_url)
    client.set(TABLE_KEY, RouteTable(version=version, routes=[]).dumps())
    client.publish(TABLE_CHANNEL, str(version))
    client.close()


def readyz(gw: RunningGateway, timeout: float = 3.0) -> httpx.Response:
    """/readyz once the table is in force (the follower reads it shortly after start)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{gw.url}/readyz")
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def test_an_empty_table_is_ready(gateway_factory: Gws, redis_url: str) -> None:
    """A loaded table with no routes is ready (helm install --wait on an empty cluster)."""
    publish_empty(redis_url)
    r = readyz(gateway_factory())
    assert r.status_code == 200
    assert r.json()["routes"] == 0
    assert r.json()["status"] is True


def test_readyz_reports_the_serving_clients(gateway_factory: Gws, redis_url: str) -> None:
    """Both Redis clients requests are served with are PINGed and reported."""
    publish_empty(redis_url)
    body: dict[str, Any] = readyz(gateway_factory()).json()
    assert body["lean"] is True
    assert body["pool"] is True


def test_readyz_replaces_connections_redis_dropped(
    gateway_factory: Gws, redis_url: str, redis_server: RedisServer
) -> None:
    """Redis restarted: the probe reaches it again through the lean client and the pool."""
    publish_empty(redis_url)
    gw = gateway_factory()
    assert readyz(gw).json()["lean"] is True
    redis_server.restart()
    body = httpx.get(f"{gw.url}/readyz").json()
    assert body["lean"] is True
    assert body["pool"] is True


def test_redis_down_is_reported_not_unready(
    gateway_factory: Gws, redis_url: str, redis_server: RedisServer
) -> None:
    """Redis gone: the table in force keeps the gateway ready; the clients show as down."""
    publish_empty(redis_url)
    gw = gateway_factory()
    assert readyz(gw).status_code == 200
    redis_server.stop()
    try:
        r = httpx.get(f"{gw.url}/readyz")
        assert r.status_code == 200
        assert r.json()["lean"] is False
        assert r.json()["pool"] is False
    finally:
        redis_server.restart()


def sample(gw: RunningGateway, name: str, **labels: str) -> float | None:
    """One sample of the gateway's /metrics (None when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{gw.url}/metrics").text
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def test_metrics_say_whether_redis_answers(
    gateway_factory: Gws, redis_url: str, redis_server: RedisServer
) -> None:
    """tollgate_gateway_redis_up is 1 while Redis answers a PING, 0 while it is gone."""
    publish_empty(redis_url)
    gw = gateway_factory()
    assert readyz(gw).status_code == 200
    assert sample(gw, "tollgate_gateway_redis_up") == 1
    redis_server.stop()
    try:
        assert sample(gw, "tollgate_gateway_redis_up") == 0
    finally:
        redis_server.restart()
    assert sample(gw, "tollgate_gateway_redis_up") == 1


def test_fail_open_is_counted_per_route(gateway_factory: Gws, upstream_factory: Any) -> None:
    """Auth unreachable: a failOpen route serves, and tollgate_gateway_auth_fail_open_total
    counts it under the route; a fail-closed route's 503 is not counted."""
    from tollgate_testkit.ports import free_port

    from .conftest import route_doc

    up = upstream_factory()
    routes = route_doc("free", "/free", [up.url], failOpen=True) + "---\n"
    routes += route_doc("paid", "/paid", [up.url])
    gw = gateway_factory(routes, auth_url=f"http://127.0.0.1:{free_port()}")
    key = {"api_key": "tg_aaaaaaaa_" + "x" * 43}
    assert httpx.get(f"{gw.url}/api/v1/free/X", params=key).status_code == 200
    assert httpx.get(f"{gw.url}/api/v1/paid/X", params=key).status_code == 503
    assert sample(gw, "tollgate_gateway_auth_fail_open_total", route="default/free") == 1
    assert sample(gw, "tollgate_gateway_auth_fail_open_total", route="default/paid") is None


def test_no_docs_page_loads_from_a_cdn(gateway_factory: Gws) -> None:
    """/docs and /redoc (FastAPI's CDN pages, blank offline) are not served: a JSON 404."""
    gw = gateway_factory()
    for path in ("/docs", "/redoc"):
        r = httpx.get(f"{gw.url}{path}")
        assert r.status_code == 404
        assert r.json()["status"] is False
