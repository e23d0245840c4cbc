"""The stack on a real three-primary Redis Cluster (a ``redis+cluster://`` URL, issue 13): a
metered request answered end to end, the credit charged once; and the billing walkthrough of the
README from a plan and a key made through the admin API to the usage export, every service on the
cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tollgate_common.contracts.events import USAGE_STREAM_KEY
from tollgate_common.contracts.routes import TABLE_CHANNEL, TABLE_KEY, Route, RouteTable
from tollgate_common.ledger.apikeys import key_hash
from tollgate_common.ledger.layout import record_key
from tollgate_common.redis.slots import key_slot
from tollgate_testkit.receivers import UsageReceiver, wait_for
from tollgate_testkit.redis_cluster import RedisClusterNodes
from tollgate_testkit.services import (
    ADMIN_TOKEN,
    Service,
    start_auth,
    start_gateway,
    start_notifier,
)
from tollgate_testkit.upstreams import Upstream

from .conftest import PEPPER, routes_yaml


@pytest.fixture(params=["http", "redis"])
def cluster_stack(
    request: pytest.FixtureRequest, tmp_path: Path, redis_cluster: RedisClusterNodes
) -> Iterator[tuple[Service, Service]]:
    """One auth and one gateway (AUTH_MODE http or redis) on the cluster's seed URL."""
    up = Upstream("up", tmp_path)
    started: list[Service] = []
    try:
        routes = tmp_path / "routes.yaml"
        routes.write_text(routes_yaml(up.url))
        started.append(start_auth(tmp_path, redis_cluster.url, KEY_PEPPER=PEPPER))
        started.append(
            start_gateway(
                tmp_path,
                redis_cluster.url,
                ROUTES_FILE=str(routes),
                AUTH_URL=started[0].url,
                AUTH_MODE=request.param,
                KEY_PEPPER=PEPPER,
            )
        )
        yield started[0], started[1]
    finally:
        for s in reversed(started):
            s.stop()
        up.stop()


def test_a_metered_request_on_the_cluster(
    cluster_stack: tuple[Service, Service], redis_cluster: RedisClusterNodes
) -> None:
    """Two requests through the gateway (a miss and a cache hit), each charged once on the key's
    node; gateway and auth are ready. The key's record is written here, as auth's store leaves
    it: the store's own create-key script still spans slots (the admin path's part of issue
    13, done apart)."""
    auth, gateway = cluster_stack
    key_id = "clstrkey"
    key = f"tg_{key_id}_" + "s" * 43
    record = record_key(key_id, key_hash(key, PEPPER))
    owner = redis_cluster.owner(key_slot(record))
    owner.cmd("HSET", record, "id", key_id, "credits", 5)
    for _ in range(2):
        got = httpx.get(f"{gateway.url}/api/v1/eod/CLST", params={"api_key": key}, timeout=10)
        assert got.status_code == 200, got.text
    assert owner.cmd("HGET", record, "credits") == "3"
    assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
    assert httpx.get(f"{auth.url}/readyz", timeout=10).status_code == 200


@pytest.mark.parametrize("mode", ["http", "redis"])
def test_from_a_key_made_by_the_admin_api_to_its_invoice_export(
    tmp_path: Path, redis_cluster: RedisClusterNodes, usage_receiver: UsageReceiver, mode: str
) -> None:
    """Every service on the cluster: a plan and a key made through auth's admin API (their
    scripts on one slot each), requests charged by the plan's cost, a plan change fanned out to
    the key's copy, a cache miss then hit, a failed route refunded, ``/_tollgate/v1/me``, the
    usage API, a purge, and the exporter's CloudEvents: one per charge and refund, netting to
    the credits the key lost."""
    up = Upstream("up", tmp_path)
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(up.url))
    url = redis_cluster.url
    started: list[Service] = []
    try:
        # the exporter first: its stream exists before the first charge is made
        started.append(start_notifier(tmp_path, url, "u1", USAGE_EXPORT_URL=usage_receiver.url))
        stream_owner = redis_cluster.owner(key_slot(USAGE_STREAM_KEY))
        wait_for(lambda: stream_owner.cmd("EXISTS", USAGE_STREAM_KEY) == 1, timeout=30)
        started.append(start_auth(tmp_path, url, KEY_PEPPER=PEPPER))
        auth = started[-1]
        env = {"ROUTES_FILE": str(routes), "AUTH_URL": auth.url, "KEY_PEPPER": PEPPER}
        started.append(start_gateway(tmp_path, url, AUTH_MODE=mode, **env))
        gateway = started[-1]
        admin = httpx.Client(
            base_url=auth.url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        plan: dict[str, object] = {"name": "pro", "rate": 50, "burst": 20, "costs": {"/live": 2}}
        assert admin.put("/v1/admin/plans/pro", json=plan).status_code == 200
        made = admin.post("/v1/admin/keys", json={"credits": 1000, "plan": "pro"})
        assert made.status_code == 201, made.text
        key_id, key = made.json()["id"], made.json()["key"]

        def get(path: str) -> httpx.Response:
            return httpx.get(f"{gateway.url}/api/v1/{path}", params={"api_key": key}, timeout=10)

        assert [get("live/a").status_code for _ in range(2)] == [200, 200]  # 2 credits each
        plan["costs"] = {"/live": 3}
        assert admin.put("/v1/admin/plans/pro", json=plan).status_code == 200
        assert get("live/b").status_code == 200  # the key's copy of the plan changed: 3
        eods = [get("eod/CLST") for _ in range(2)]
        assert [r.headers.get("x-cache") for r in eods] == ["MISS", "HIT"], eods[0].text
        assert get("broken/x").status_code >= 400  # 3 charged, refunded
        purged = admin.delete("/v1/admin/cache", params={"route": "default/eod"})
        assert purged.json()["deleted"] == 1, purged.text
        # the gateway's own tier hears of it on pub/sub (within a second, README); each look is
        # charged like any request, a HIT included
        wait_for(lambda: get("eod/CLST").headers.get("x-cache") == "MISS", 10, interval=0.2)
        spent = 2 + 2 + 3 + 1 + 1 + 1  # live, eod miss, hit and after the purge (at least)
        me = httpx.get(f"{gateway.url}/_tollgate/v1/me", params={"api_key": key}, timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["plan"] == "pro"
        left = int(admin.get(f"/v1/admin/keys/{key_id}").json()["credits"])
        assert me.json()["credits"] == left <= 1000 - spent

        usage = admin.get(f"/v1/admin/keys/{key_id}/usage").json()
        assert usage["total"]["charged"] - usage["total"]["refunded"] == 1000 - left
        assert usage["routes"]["default/live"]["charged"] == 7
        assert usage["routes"]["default/broken"]["refunded"] == 3

        def exported() -> int:
            return sum(e["data"]["credits"] for e in usage_receiver.events)

        wait_for(lambda: exported() == 1000 - left, timeout=30)
        assert usage_receiver.problems == []
        events = usage_receiver.events
        assert {e["subject"] for e in events} == {key_id}
        kinds = [e["data"]["kind"] for e in events]
        assert kinds.count("refund") == 1
        assert (
            kinds.count("charge") >= 7
        )  # live 3, eod 3 (more if the purge's wait missed), broken 1
        assert len(set(usage_receiver.ids())) == len(events)  # one event per charge or refund
        admin.close()
    finally:
        for s in reversed(started):
            s.stop()
        up.stop()


def test_a_gateway_on_the_cluster_follows_the_published_route_table(
    tmp_path: Path, redis_cluster: RedisClusterNodes
) -> None:
    """No routes file: the gateway follows the table in Redis as the operator publishes it (SET,
    then PUBLISH of its version on TABLE_CHANNEL); a second version applies without a restart."""
    up = Upstream("up", tmp_path)
    gateway = start_gateway(tmp_path, redis_cluster.url)  # no AUTH_URL: a plain proxy
    client = redis.RedisCluster.from_url(redis_cluster.url.replace("redis+cluster", "redis"))
    try:
        for version, prefix in ((1, "/one"), (2, "/two")):
            spec = {"pathPrefix": prefix, "endpoints": [{"url": up.url}]}
            table = RouteTable(
                version=version, routes=[Route.model_validate({"name": "default/r", "spec": spec})]
            )
            client.set(TABLE_KEY, table.dumps())
            client.publish(TABLE_CHANNEL, str(version))
            wait_for(
                lambda p=prefix: (
                    httpx.get(f"{gateway.url}/api/v1{p}/x", timeout=10).status_code == 200
                ),
                timeout=10,
            )
        assert httpx.get(f"{gateway.url}/api/v1/one/x", timeout=10).status_code == 404
    finally:
        client.close()
        gateway.stop()
        up.stop()
