"""The release's life: an upgrade under load, `helm test`, and an uninstall that leaves only the
CRD (Helm's convention: CRDs in crds/ are never deleted)."""

from __future__ import annotations

import json

from tollgate_testkit.cluster import VALUES, Cluster, wait_until
from tollgate_testkit.load import Load

from .conftest import serves

ROLLED = ("gateway", "auth", "notifier", "operator")


def pod_names(cluster: Cluster, component: str) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.pods(component)}


def test_upgrade_rolls_every_pod_with_no_failed_request(cluster: Cluster, eod: str) -> None:
    key_id, key = cluster.new_key(1_000_000)
    before = {c: pod_names(cluster, c) for c in ROLLED}
    values = json.loads(cluster.helm("get", "values", cluster.release, "-o", "json"))
    new_level = "DEBUG" if values.get("log", {}).get("level") != "DEBUG" else "INFO"
    with Load(f"{cluster.gateway_url}/api/v1{eod}/UPGRADE.US?api_key={key}", workers=4) as load:
        load.wait_for(200)
        cluster.install("--reuse-values", "--set", f"log.level={new_level}")
        n = load.outcomes.total
        load.wait_for(n + 200)
    out = load.stop()
    for c in ROLLED:
        assert not pod_names(cluster, c) & before[c], f"{c} pods were not replaced"
    assert out.failed == 0, str(out)
    assert 1_000_000 - cluster.credits(key_id) == out.codes[200]
    assert serves(cluster, eod)


def test_helm_test_passes(cluster: Cluster, eod: str) -> None:
    out = cluster.helm("test", cluster.release, "--timeout", "3m", timeout=200)
    assert "Phase:          Succeeded" in out, out


def test_uninstall_leaves_only_the_crd(cluster: Cluster) -> None:
    """A second release in its own namespace, with a route of its own, installed and uninstalled:
    nothing of it is left but the CRD. ApiBackends are the user's and carry the operator's
    finalizer, so they go first, while the operator runs (README: Uninstall)."""
    other = Cluster(cluster.kubeconfig, namespace="tollgate-life", release="life")
    other.install(
        "--set", "gateway.replicas=1", "--set", "auth.replicas=1", "--set", "demo.enabled=false",
        "--set", "redis.persistence.enabled=false",
        values=VALUES,
    )  # fmt: skip
    backend = {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "ApiBackend",
        "metadata": {"name": "life"},
        "spec": {"pathPrefix": "/life", "endpoints": [{"url": "http://127.0.0.1:9"}]},
    }
    other.kubectl("apply", "-f", "-", stdin=json.dumps(backend))
    wait_until("the route served", lambda: serves(other, "/life"), timeout=30)
    other.kubectl("delete", "apibackend", "life", "--timeout=30s")
    other.helm("uninstall", other.release, "--wait", "--timeout", "3m", timeout=200)

    labelled = f"app.kubernetes.io/instance={other.release}"
    kinds = "all,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies,pdb,pvc"

    def left() -> list[str]:
        items = other.get(kinds, "-l", labelled)["items"]
        return [f"{x['kind']}/{x['metadata']['name']}" for x in items]

    # --wait waits for the objects; their pods still finish their preStop and drain
    wait_until("the release's objects gone", lambda: not left(), timeout=120)
    cluster_wide = other.get("clusterroles,clusterrolebindings", "-l", labelled, namespaced=False)
    assert cluster_wide["items"] == []
    assert other.get("crd", "apibackends.tollgate.dev", namespaced=False)["metadata"]["name"]
    other.kubectl("delete", "namespace", other.namespace, "--timeout=90s", namespaced=False)
