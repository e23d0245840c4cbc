"""Faults as pods: a gateway, the operator and Redis deleted while clients keep calling."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import httpx

from tollgate_testkit.cluster import Cluster, wait_until
from tollgate_testkit.load import Load
from tollgate_testkit.prometheus import metric

from .conftest import backend, serves


def settle(cluster: Cluster, component: str, replicas: int) -> None:
    """Wait until the component is back to `replicas` ready pods and nothing else terminating."""

    def done() -> bool:
        dep = cluster.get("deployment", cluster.name(component))
        s = dep["status"]
        return (
            s.get("readyReplicas") == replicas
            and s.get("updatedReplicas") == replicas
            and s.get("replicas") == replicas
            and len(cluster.ready_pods(component)) == replicas
        )

    wait_until(f"{component} back to {replicas} ready pods", done, timeout=120)


def test_gateway_pod_deleted_under_load(cluster: Cluster, eod: str) -> None:
    """preStop keeps the pod serving until kube-proxy forgets it; the drain finishes what is in
    flight; the PDB and the second replica carry the rest: no client sees a failure."""
    key_id, key = cluster.new_key(1_000_000)
    victim = cluster.ready_pods("gateway")[0]["metadata"]["name"]
    with Load(f"{cluster.gateway_url}/api/v1{eod}/FAULT.US?api_key={key}", workers=4) as load:
        load.wait_for(200)
        cluster.kubectl("delete", "pod", victim, "--wait=false")
        wait_until(f"{victim} gone", lambda: not victim_exists(cluster, victim), timeout=90)
        settle(cluster, "gateway", 2)
        n = load.outcomes.total
        load.wait_for(n + 200)
    out = load.stop()
    assert out.failed == 0, str(out)
    assert 1_000_000 - cluster.credits(key_id) == out.charged == out.codes[200]


def victim_exists(cluster: Cluster, name: str) -> bool:
    return any(
        p["metadata"]["name"] == name
        for p in cluster.get("pods", "-l", "app.kubernetes.io/component=gateway")["items"]
    )


def operator_metric(cluster: Cluster, name: str, **labels: str) -> float:
    """The sample on the ready operator pod: ready means its /metrics answers (the chart's
    readiness probe), so a refused connection here is a defect, not a race to wait out."""
    pod = cluster.ready_pods("operator")[0]
    return metric(f"http://{pod['status']['podIP']}:8084", name, **labels)


def test_operator_pod_deleted_keeps_and_republishes_the_table(cluster: Cluster, eod: str) -> None:
    """The gateways keep serving while no operator runs; the new pod resumes every ApiBackend
    and asserts the same table (publishing is idempotent: same routes, same version)."""
    _, key = cluster.new_key(1_000_000)
    version = operator_metric(cluster, "tollgate_operator_table_version")
    victim = cluster.pods("operator")[0]["metadata"]["name"]
    with Load(f"{cluster.gateway_url}/api/v1{eod}/OPERATOR.US?api_key={key}", workers=2) as load:
        load.wait_for(50)
        cluster.kubectl("delete", "pod", victim, "--wait=true", "--timeout=60s")
        assert serves(cluster, eod)
        settle(cluster, "operator", 1)
        wait_until(
            "the new operator to resume and publish",
            lambda: (
                operator_metric(cluster, "tollgate_operator_table_version") == version
                and operator_metric(cluster, "tollgate_operator_reconciles_total", trigger="resume")
                > 0
            ),
            timeout=60,
        )
        n = load.outcomes.total
        load.wait_for(n + 50)
    out = load.stop()
    assert out.failed == 0, str(out)
    assert serves(cluster, eod)


def operator_pods(cluster: Cluster) -> list[Any]:
    """Every operator pod, terminating ones included."""
    selector = f"app.kubernetes.io/instance={cluster.release},app.kubernetes.io/component=operator"
    items: list[Any] = cluster.get("pods", "-l", selector)["items"]
    return items


def test_a_change_made_while_no_operator_runs_is_published_on_its_return(
    cluster: Cluster, eod: str
) -> None:
    prefix = f"/off{uuid.uuid4().hex[:6]}"
    deployment = f"deployment/{cluster.name('operator')}"
    cluster.kubectl("scale", deployment, "--replicas=0")
    try:
        # gone, not only terminating: a terminating operator still reconciles until it exits
        wait_until("no operator process", lambda: not operator_pods(cluster), timeout=90)
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            stdin=backend(f"off-{prefix[4:]}", prefix, service="eod-b", port=9002),
        )
        time.sleep(3)
        assert not serves(cluster, prefix)  # nobody has published it yet
    finally:
        cluster.kubectl("scale", deployment, "--replicas=1")
    settle(cluster, "operator", 1)
    wait_until(f"{prefix} on every gateway", lambda: serves(cluster, prefix), timeout=60)
    cluster.kubectl("delete", "apibackend", f"off-{prefix[4:]}", "--timeout=30s")


def probe(url: str, seen: Counter[int]) -> bool:
    status = httpx.get(url, timeout=10).status_code
    seen[status] += 1
    return status == 200


def test_redis_pod_deleted_fails_closed_then_recovers(cluster: Cluster, eod: str) -> None:
    """Without Redis no request is served unpaid (503, fail closed); the gateways keep their last
    good table; once Redis is back (its append-only file on the claim) the same key works again
    and every credit debited is an answer served."""
    key_id, key = cluster.new_key(1_000_000)
    url = f"{cluster.gateway_url}/api/v1{eod}/REDIS.US?api_key={key}"
    probes: Counter[int] = Counter()  # the test's own requests: charged too when they succeed
    assert probe(url, probes)
    victim = cluster.pods("redis")[0]["metadata"]["name"]
    with Load(url, workers=3, pause=0.02) as load:
        load.wait_for(100)
        cluster.kubectl("delete", "pod", victim, "--wait=true", "--timeout=60s")
        wait_until("a failed-closed answer", lambda: load.outcomes.codes[503] > 0, timeout=30)
        assert serves(cluster, eod)
        settle(cluster, "redis", 1)
        wait_until("service again", lambda: probe(url, probes), timeout=60)
        n = load.outcomes.codes[200]
        wait_until("load served again", lambda: load.outcomes.codes[200] > n + 50, timeout=60)
    out = load.stop()
    assert set(out.codes) <= {200, 503}, str(out)
    assert not out.errors, str(out)
    wait_until("gateways and auth ready", lambda: len(cluster.ready_pods("gateway")) == 2, 60)
    # A request whose authorize outcome the gateway never learnt (Redis went away mid-script) is
    # refunded by its charge id from the gateway's queue, with back-off (at most 5 s apart): the
    # ledger settles on exactly the answers served, the test's probes included.
    served = out.charged + probes[200]

    def debited() -> int:
        return 1_000_000 - cluster.credits(key_id)

    print(f"redis pod deleted: {out}; probes {dict(probes)}")
    try:
        wait_until("debits = answers served", lambda: debited() == served, timeout=45)
    except AssertionError:
        raise AssertionError(f"{out}; debited {debited()}, served {served}") from None
