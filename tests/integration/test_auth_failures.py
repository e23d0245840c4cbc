"""Auth or Redis down: fail closed with a clear 503, failOpen routes still serve, nothing lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tollgate_testkit.provider import Provider, RedisHandle
from tollgate_testkit.services import Service, start_auth, start_gateway

from .conftest import metric, routes_yaml


@pytest.fixture
def solo(
    tmp_path: Path, fixture_provider: Provider
) -> Iterator[tuple[RedisHandle, Service, Service]]:
    """A Redis and an upstream of the session's provider, one auth service, one gateway."""
    redis = fixture_provider.redis(tmp_path / "redis")
    up = fixture_provider.upstream("up", tmp_path)
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(up.url))
    auth = start_auth(tmp_path, redis.url)
    gw = start_gateway(tmp_path, redis.url, ROUTES_FILE=str(routes), AUTH_URL=auth.url)
    yield redis, auth, gw
    gw.stop()
    auth.stop()
    up.stop()
    redis.stop()


def test_auth_down_fails_closed(solo: tuple[RedisHandle, Service, Service]) -> None:
    """The auth service gone: 503 JSON on paid routes; the failOpen route still serves."""
    _, auth, gw = solo
    auth.stop()
    r = httpx.get(f"{gw.url}/api/v1/live/X", params={"api_key": "tg_aaaaaaaa_" + "x" * 43})
    assert r.status_code == 503
    assert r.json()["status"] is False
    assert "auth" in r.json()["message"]
    free = httpx.get(f"{gw.url}/api/v1/free/X", params={"api_key": "tg_aaaaaaaa_" + "x" * 43})
    assert free.status_code == 200
    assert metric(gw.url, "tollgate_gateway_auth_fail_open_total", route="default/free") == 1
    # nothing reached a ledger, so nothing is owed back (no refund per request of an outage)
    assert metric(gw.url, "tollgate_gateway_refunds_pending") == 0


def test_redis_down_fails_closed(solo: tuple[RedisHandle, Service, Service]) -> None:
    """Redis gone: 503 JSON, never a 500; back up: served again."""
    redis, auth, gw = solo
    with httpx.Client(
        base_url=auth.url, headers={"Authorization": "Bearer test-admin-token-0123456789"}
    ) as c:
        key = c.post("/v1/admin/keys", json={"credits": 5}).json()["key"]
    redis.stop()
    try:
        r = httpx.get(f"{gw.url}/api/v1/live/X", params={"api_key": key}, timeout=10)
        assert r.status_code == 503
        assert r.json()["status"] is False
    finally:
        redis.restart()
    # the restarted Redis is empty (no persistence in this test): the key is unknown now
    r = httpx.get(f"{gw.url}/api/v1/live/X", params={"api_key": key}, timeout=10)
    assert r.status_code == 401


def test_redis_down_fails_closed_in_redis_mode(tmp_path: Path, fixture_provider: Provider) -> None:
    """AUTH_MODE=redis with Redis gone: 503 JSON, never a 500."""
    redis = fixture_provider.redis(tmp_path / "redis")
    up = fixture_provider.upstream("up", tmp_path)
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(up.url))
    auth = start_auth(tmp_path, redis.url)
    gw = start_gateway(tmp_path, redis.url, ROUTES_FILE=str(routes), AUTH_MODE="redis")
    try:
        with httpx.Client(
            base_url=auth.url, headers={"Authorization": "Bearer test-admin-token-0123456789"}
        ) as c:
            key = c.post("/v1/admin/keys", json={"credits": 5}).json()["key"]
        assert httpx.get(f"{gw.url}/api/v1/live/X", params={"api_key": key}).status_code == 200
        redis.stop()
        r = httpx.get(f"{gw.url}/api/v1/live/X", params={"api_key": key}, timeout=10)
        assert r.status_code == 503
        assert r.json()["status"] is False
        free = httpx.get(f"{gw.url}/api/v1/free/X", params={"api_key": key}, timeout=10)
        assert free.status_code == 200  # failOpen
        assert metric(gw.url, "tollgate_gateway_auth_fail_open_total", route="default/free") == 1
        assert metric(gw.url, "tollgate_gateway_refunds_pending") == 0  # nothing was sent
    finally:
        gw.stop()
        auth.stop()
        up.stop()
        redis.stop()
