"""Least privilege, checked against what the operator really calls: the API server's audit log
records every request of a ServiceAccount (hack/cluster.sh's audit policy), and the rules the chart
grants the operator must be exactly the ones it uses, in both watch modes, with no 403."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tollgate_testkit.cluster import STATE, Cluster, wait_until

from .conftest import backend

Grant = tuple[str, str, str]  # apiGroup, resource[/subresource], verb
AUDIT = STATE / "logs/audit.log"


def requests(cluster: Cluster, since: str) -> Iterator[tuple[Grant, int]]:
    """(grant, response code) of every resource request the operator made after `since`."""
    user = f"system:serviceaccount:{cluster.namespace}:{cluster.name('operator')}"
    with AUDIT.open() as f:
        for line in f:
            e = json.loads(line)
            ref = e.get("objectRef")
            # a watch is logged when it starts (ResponseStarted) and again when it ends
            stage = "ResponseStarted" if e["verb"] == "watch" else "ResponseComplete"
            if e["user"]["username"] != user or e["stage"] != stage or not ref:
                continue
            if e["requestReceivedTimestamp"] < since:
                continue
            resource = ref["resource"] + (f"/{ref['subresource']}" if "subresource" in ref else "")
            yield (ref.get("apiGroup", ""), resource, e["verb"]), e["responseStatus"]["code"]


def granted(cluster: Cluster) -> set[Grant]:
    names = {cluster.name("operator"), cluster.name("operator") + "-crds"}
    roles = [
        *cluster.get("clusterroles", namespaced=False)["items"],
        *cluster.get("roles")["items"],
    ]
    return {
        (group, resource, verb)
        for role in roles
        if role["metadata"]["name"] in names
        for rule in role.get("rules", [])
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def exercise(cluster: Cluster) -> None:
    """Everything the operator does in a route's life: watch, finalizer and status patches,
    an Event, a delete."""
    name = f"rbac-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("apply", "-f", "-", stdin=backend(name, f"/{name}"))
    wait_until(
        "the route Ready",
        lambda: any(
            c["status"] == "True"
            for c in cluster.get("apibackend", name).get("status", {}).get("conditions", [])
        ),
        timeout=30,
    )
    cluster.kubectl("delete", "apibackend", name, "--timeout=30s")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check(cluster: Cluster, since: str) -> None:
    seen = list(requests(cluster, since))
    denied = sorted({g for g, code in seen if code == 403})
    assert denied == [], f"the operator was refused: {denied}"
    used = {g for g, code in seen if code < 400}
    assert used == granted(cluster), f"used {sorted(used)}; granted {sorted(granted(cluster))}"


@pytest.fixture
def audit(cluster: Cluster) -> Path:
    if not AUDIT.exists():
        pytest.skip("no audit log: the least-privilege check needs the local cluster")
    return AUDIT


def restart_operator(cluster: Cluster, *helm_set: str) -> str:
    since = now()
    cluster.install("--reuse-values", *helm_set)
    wait_until(
        "one new operator pod",
        lambda: (
            len(cluster.ready_pods("operator")) == 1
            and cluster.ready_pods("operator")[0]["metadata"]["creationTimestamp"] >= since[:19]
        ),
        timeout=120,
    )
    return since


def test_clusterwide_operator_uses_exactly_what_it_is_granted(
    cluster: Cluster, audit: Path, eod: str
) -> None:
    since = now()
    cluster.kubectl("rollout", "restart", f"deployment/{cluster.name('operator')}")
    wait_until(
        "a new operator pod",
        lambda: any(
            p["metadata"]["creationTimestamp"] >= since[:19] for p in cluster.ready_pods("operator")
        ),
        timeout=120,
    )
    exercise(cluster)
    check(cluster, since)


def test_namespaced_operator_uses_exactly_what_it_is_granted(
    cluster: Cluster, audit: Path, eod: str
) -> None:
    since = restart_operator(cluster, "--set-json", f'operator.namespaces=["{cluster.namespace}"]')
    try:
        exercise(cluster)
        check(cluster, since)
    finally:
        restart_operator(cluster, "--set-json", "operator.namespaces=[]")
