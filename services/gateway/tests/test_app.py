"""The gateway's /readyz against a real redis-server: what it checks and what decides it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import redis

from tollgate_common.routes import TABLE_CHANNEL, TABLE_KEY, RouteTable
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
