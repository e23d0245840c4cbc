"""The real-pods tier: Tollgate's own images as pods on a real Kubernetes, reached through its
Services. `TOLLGATE_CLUSTER_PROVIDER` picks the cluster: `local` (default; hack/cluster.sh on this
host, skipped with the reason where the host cannot run it) or `existing` (KUBECONFIG, with the
release installed, e.g. by hack/kind-e2e.sh). `TOLLGATE_CLUSTER_KEEP=1` leaves the local cluster
up after the run, for the next one or for a look around."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tollgate_testkit.cluster import (
    ROOT,
    Cluster,
    local_cluster,
    teardown_local,
    wait_until,
    why_not_local,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.cluster)
            # The first test also pays for the cluster, the images and the install.
            item.add_marker(pytest.mark.timeout(1800))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.environ.get("TOLLGATE_CLUSTER_PROVIDER", "local") == "existing":
        yield Cluster(
            Path(os.environ["KUBECONFIG"]),
            namespace=os.environ.get("TOLLGATE_CLUSTER_NAMESPACE", "tollgate"),
            release=os.environ.get("TOLLGATE_CLUSTER_RELEASE", "tollgate"),
        )
        return
    why = why_not_local()
    if why:
        pytest.skip(f"real-pods tier needs the local cluster: {why}")
    c = local_cluster()
    try:
        yield c
    finally:
        if os.environ.get("TOLLGATE_CLUSTER_KEEP") != "1":
            teardown_local(c)


@pytest.fixture(scope="session")
def eod(cluster: Cluster) -> str:
    """The sample route (deploy/samples/eod.yaml, racing the demo upstreams), on every gateway."""
    cluster.kubectl("apply", "-f", str(ROOT / "deploy/samples/eod.yaml"))
    wait_until("every gateway to serve /eod", lambda: serves(cluster, "/eod"), timeout=30)
    return "/eod"


def backend(name: str, prefix: str, cost: int = 1, service: str = "eod-a", port: int = 9001) -> str:
    """An ApiBackend routing ``prefix`` to one of the demo upstreams, as kubectl input."""
    return json.dumps(
        {
            "apiVersion": "tollgate.dev/v1alpha1",
            "kind": "ApiBackend",
            "metadata": {"name": name},
            "spec": {
                "pathPrefix": prefix,
                "endpoints": [{"service": {"name": service, "port": port}}],
                "creditCost": cost,
            },
        }
    )


def serves(cluster: Cluster, prefix: str) -> bool:
    pods = cluster.ready_pods("gateway")
    return bool(pods) and all(
        any(r["pathPrefix"] == prefix for r in cluster.routes_of(p)) for p in pods
    )


@pytest.fixture
def symbol() -> str:
    """A path segment no earlier request used: the first request for it is a cache MISS."""
    return f"T{uuid.uuid4().hex[:10].upper()}.US"
