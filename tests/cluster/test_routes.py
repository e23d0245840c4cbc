"""ApiBackends applied with kubectl reach every gateway pod, and their status and Events say so."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tollgate_testkit.cluster import Cluster, wait_until

from .conftest import backend, serves


def ready(cluster: Cluster, name: str) -> dict[str, Any]:
    status = cluster.get("apibackend", name).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def events(cluster: Cluster, name: str) -> list[tuple[str, str]]:
    items = cluster.get(
        "events", "--field-selector", f"involvedObject.kind=ApiBackend,involvedObject.name={name}"
    )["items"]
    return [(e["type"], e["reason"]) for e in items]


def charge_of(cluster: Cluster, prefix: str) -> int:
    key_id, key = cluster.new_key(100)
    r = httpx.get(f"{cluster.gateway_url}/api/v1{prefix}/X.US", params={"api_key": key}, timeout=10)
    assert r.status_code == 200, r.text
    return 100 - cluster.credits(key_id)


def test_apply_patch_delete_reach_every_gateway(cluster: Cluster) -> None:
    name, prefix = f"lv-{uuid.uuid4().hex[:6]}", f"/lv{uuid.uuid4().hex[:6]}"
    cluster.kubectl("apply", "-f", "-", stdin=backend(name, prefix))
    wait_until(f"{prefix} on every gateway", lambda: serves(cluster, prefix), timeout=15)
    assert charge_of(cluster, prefix) == 1
    wait_until("Ready=True", lambda: ready(cluster, name).get("status") == "True", timeout=15)
    cond = ready(cluster, name)
    assert (cond["reason"], cond["observedGeneration"]) == ("Published", 1)
    assert cond["message"] == f"serving {prefix} on 1 endpoint(s)"
    wait_until("a Published event", lambda: ("Normal", "Published") in events(cluster, name))

    cluster.kubectl("patch", "apibackend", name, "--type=merge", "-p", '{"spec":{"creditCost":3}}')
    wait_until("the new cost on every gateway", lambda: charge_of(cluster, prefix) == 3, timeout=15)
    wait_until("observedGeneration 2", lambda: ready(cluster, name).get("observedGeneration") == 2)

    cluster.kubectl("delete", "apibackend", name, "--wait=true", "--timeout=30s")
    wait_until(f"{prefix} gone", lambda: not any_serves(cluster, prefix), timeout=15)
    _, key = cluster.new_key(5)
    r = httpx.get(f"{cluster.gateway_url}/api/v1{prefix}/X.US", params={"api_key": key}, timeout=10)
    assert r.status_code == 404
    assert r.json()["status"] is False


def any_serves(cluster: Cluster, prefix: str) -> bool:
    return any(
        any(r["pathPrefix"] == prefix for r in cluster.routes_of(p))
        for p in cluster.ready_pods("gateway")
    )


def test_conflict_is_a_warning_until_the_holder_goes(cluster: Cluster) -> None:
    prefix = f"/cf{uuid.uuid4().hex[:6]}"
    holder, rival = f"cf-a-{prefix[3:]}", f"cf-b-{prefix[3:]}"
    cluster.kubectl("apply", "-f", "-", stdin=backend(holder, prefix))
    wait_until("the holder Ready", lambda: ready(cluster, holder).get("status") == "True")
    cluster.kubectl("apply", "-f", "-", stdin=backend(rival, prefix, cost=2))
    wait_until("the rival refused", lambda: ready(cluster, rival).get("reason") == "PrefixConflict")
    assert ready(cluster, rival)["status"] == "False"
    assert holder in ready(cluster, rival)["message"]
    wait_until("a Warning event", lambda: ("Warning", "PrefixConflict") in events(cluster, rival))
    assert charge_of(cluster, prefix) == 1  # the holder's route is the one served

    cluster.kubectl("delete", "apibackend", holder, "--wait=true", "--timeout=30s")
    # The rival is re-checked by the drift timer (30 s) at the latest.
    wait_until("the rival Ready", lambda: ready(cluster, rival).get("status") == "True", timeout=50)
    wait_until("the rival's cost served", lambda: charge_of(cluster, prefix) == 2, timeout=15)
    cluster.kubectl("delete", "apibackend", rival, "--wait=true", "--timeout=30s")
