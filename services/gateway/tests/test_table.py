"""Following the operator's route table in Redis, live."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
import redis

from tollgate_common.contracts.routes import TABLE_CHANNEL, TABLE_KEY, Route, RouteTable
from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.ports import free_port
from tollgate_testkit.redis_server import RedisServer

from .conftest import RunningGateway

Ups = Callable[..., Upstream]
Gws = Callable[..., RunningGateway]


def publish(redis_url: str, version: int, routes: dict[str, str], notify: bool = True) -> None:
    table = RouteTable(
        version=version,
        routes=[
            Route.model_validate(
                {"name": f"default{p}", "spec": {"pathPrefix": p, "endpoints": [{"url": u}]}}
            )
            for p, u in routes.items()
        ],
    )
    client = redis.Redis.from_url(redis_url)
    client.set(TABLE_KEY, table.dumps())
    if notify:
        client.publish(TABLE_CHANNEL, str(version))
    client.close()


def wait_status(gw: RunningGateway, path: str, status: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{gw.url}/api/v1{path}")
        if r.status_code == status:
            return
        assert time.monotonic() < deadline, f"{path}: {r.status_code} {r.text}"
        time.sleep(0.02)


def test_new_table_applies_without_restart(
    gateway_factory: Gws, upstream_factory: Ups, redis_url: str
) -> None:
    """A published table is in force within a second; removing a route takes it away."""
    a, b = upstream_factory("a"), upstream_factory("b")
    publish(redis_url, 1, {"/one": a.url})
    gw = gateway_factory()
    wait_status(gw, "/one/X", 200)
    publish(redis_url, 2, {"/one": b.url, "/two": a.url})
    wait_status(gw, "/two/X", 200, timeout=1.0)
    assert httpx.get(f"{gw.url}/api/v1/one/X").json()["server"] == "b"
    publish(redis_url, 3, {"/two": a.url})
    wait_status(gw, "/one/X", 404, timeout=1.0)


def test_lost_notification_is_caught_by_the_poll(
    gateway_factory: Gws, upstream_factory: Ups, redis_url: str
) -> None:
    """A table written without a notification still applies (poll backstop)."""
    a = upstream_factory("a")
    publish(redis_url, 1, {"/one": a.url})
    gw = gateway_factory()
    wait_status(gw, "/one/X", 200)
    publish(redis_url, 2, {"/two": a.url}, notify=False)
    wait_status(gw, "/two/X", 200, timeout=1.5)


def test_older_version_is_ignored(
    gateway_factory: Gws, upstream_factory: Ups, redis_url: str
) -> None:
    """A stale table (lower version) never replaces a newer one."""
    a = upstream_factory("a")
    publish(redis_url, 5, {"/one": a.url})
    gw = gateway_factory()
    wait_status(gw, "/one/X", 200)
    publish(redis_url, 4, {"/two": a.url})
    time.sleep(0.5)
    assert httpx.get(f"{gw.url}/api/v1/two/X").status_code == 404
    assert gw.gateway.state.version == 5


def test_last_good_table_survives_redis_outage(
    gateway_factory: Gws, upstream_factory: Ups, redis_url: str, redis_server: RedisServer
) -> None:
    """Redis down: the gateway keeps serving its table; back up: it follows again."""
    a = upstream_factory("a")
    publish(redis_url, 1, {"/one": a.url})
    gw = gateway_factory()
    wait_status(gw, "/one/X", 200)
    redis_server.stop()
    try:
        for _ in range(5):
            assert httpx.get(f"{gw.url}/api/v1/one/X").status_code == 200
            time.sleep(0.1)
        assert httpx.get(f"{gw.url}/readyz").status_code == 200
    finally:
        redis_server.restart()
    publish(redis_url, 2, {"/two": a.url})
    wait_status(gw, "/two/X", 200, timeout=5.0)


def test_invalid_table_keeps_the_good_one(
    gateway_factory: Gws, upstream_factory: Ups, redis_url: str
) -> None:
    """Garbage under the table key is logged and ignored."""
    a = upstream_factory("a")
    publish(redis_url, 1, {"/one": a.url})
    gw = gateway_factory()
    wait_status(gw, "/one/X", 200)
    client = redis.Redis.from_url(redis_url)
    client.set(TABLE_KEY, b'{"version": 9, "routes": [{"bad": 1}]}')
    client.publish(TABLE_CHANNEL, b"9")
    time.sleep(0.5)
    assert httpx.get(f"{gw.url}/api/v1/one/X").status_code == 200


def test_readyz_with_an_empty_table(gateway_factory: Gws) -> None:
    """Redis answers and no table is published yet (no ApiBackend): ready, with no routes."""
    gw = gateway_factory()
    r = httpx.get(f"{gw.url}/readyz")
    assert r.status_code == 200
    assert r.json()["routes"] == 0
    assert httpx.get(f"{gw.url}/api/v1/any/thing").status_code == 404


def test_readyz_fails_when_no_table_was_ever_read(gateway_factory: Gws) -> None:
    """Redis never reached since start: no table is known, not ready."""
    gw = gateway_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    r = httpx.get(f"{gw.url}/readyz")
    assert r.status_code == 503


def test_admin_port_keeps_metrics_off_the_public_port(gateway_factory: Gws) -> None:
    """With an admin port, /metrics and /routes answer there and 404 on the public port."""
    admin_port = free_port()
    gw = gateway_factory(admin_port=admin_port)
    for path in ("/metrics", "/routes"):
        public = httpx.get(f"{gw.url}{path}")
        assert public.status_code == 404
        assert public.json()["status"] is False
        assert httpx.get(f"http://127.0.0.1:{admin_port}{path}").status_code == 200
    assert httpx.get(f"{gw.url}/readyz").status_code == 200


async def test_a_poll_of_an_unchanged_table_reads_only_its_head(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The follower parses the table only when its head announces a newer version: a poll of
    the table in force (here: its body made unparseable behind an unchanged head) is a no-op."""
    from tollgate_common.redis.client import create_redis
    from tollgate_gateway.metrics import Metrics
    from tollgate_gateway.table import RedisFollower, RouteState

    publish(redis_url, 5, {"/a": "http://127.0.0.1:9"})
    client = create_redis(redis_url)
    state = RouteState(Metrics())
    follower = RedisFollower(client, state, poll_seconds=1)
    try:
        await follower.refresh()
        assert state.version == 5
        await client.set(TABLE_KEY, '{"version":5,"routes":[not json')
        await follower.refresh()  # parsed, it would log the table as invalid
        assert not [r for r in caplog.records if "invalid" in r.getMessage()]
        await client.set(TABLE_KEY, '{"version":6,"routes":[not json')
        await follower.refresh()  # a newer head: read and parsed, refused, v5 kept
        assert [r for r in caplog.records if "invalid" in r.getMessage()]
        publish(redis_url, 7, {"/b": "http://127.0.0.1:9"})
        await follower.refresh()
        assert (state.version, list(state.by_name)) == (7, ["default/b"])
    finally:
        await client.aclose()
