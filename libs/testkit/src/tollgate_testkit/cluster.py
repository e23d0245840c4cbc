"""Tollgate as pods on a real Kubernetes, for the black-box suite in tests/cluster.

Two providers give the same `Cluster`:

- ``local`` (default): the single-node cluster of ``hack/cluster.sh`` (every component a host
  process over containerd), the images built by ``hack/images.sh --local-base --import`` and the
  chart installed with ``helm upgrade --install --wait``. Needs root and the binaries of
  ``hack/k8s-tools.sh``; `why_not_local` says what is missing, and the suite skips with it.
- ``existing``: the cluster of ``KUBECONFIG`` with the release already installed (kind, through
  ``hack/kind-e2e.sh``).

Requests go to the Services' ClusterIPs: on the local node the host is the node, and kube-proxy's
OUTPUT rules route them, exactly as a pod's would be.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tollgate_testkit.kube import TOOLS

ROOT = Path(__file__).resolve().parents[4]
STATE = Path(os.environ.get("TOLLGATE_CLUSTER_STATE", "/var/tmp/tollgate-cluster"))
CHART = ROOT / "deploy/helm/tollgate"
VALUES = ROOT / "tests/cluster/values.yaml"


def _run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = 600) -> str:
    env = {**os.environ, "PATH": f"{TOOLS}:{os.environ.get('PATH', '')}"}
    p = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, env=env
    )
    if p.returncode:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {p.returncode}:\n{p.stderr[-4000:]}")
    return p.stdout


def why_not_local() -> str | None:
    """Why this host cannot start the local cluster, or None when it can."""
    p = subprocess.run(
        ["bash", str(ROOT / "hack/cluster.sh"), "can-run"], capture_output=True, text=True
    )
    return (p.stderr.strip() or "hack/cluster.sh can-run failed") if p.returncode else None


def wait_until(
    what: str, check: Callable[[], bool], timeout: float = 60, every: float = 0.5
) -> None:
    """Poll `check` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class Cluster:
    kubeconfig: Path
    namespace: str = "tollgate"
    release: str = "tollgate"
    _token: str = field(default="", repr=False)
    down: bool = False  # torn down by teardown_local

    # -- the tools --------------------------------------------------------------------------
    def kubectl(self, *args: str, stdin: str | None = None, namespaced: bool = True) -> str:
        ns = ["-n", self.namespace] if namespaced else []
        return _run(["kubectl", "--kubeconfig", str(self.kubeconfig), *ns, *args], stdin=stdin)

    def get(self, *args: str, namespaced: bool = True) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", namespaced=namespaced))

    def helm(self, *args: str, timeout: float = 600) -> str:
        return _run(
            ["helm", "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args],
            timeout=timeout,
        )

    def install(self, *extra: str, values: Path = VALUES) -> None:
        """helm upgrade --install --wait of the chart with the tier's values (and `extra`)."""
        self.helm(
            "upgrade", "--install", self.release, str(CHART), "--create-namespace",
            "-f", str(values), "--wait", "--timeout", "5m", *extra, timeout=400,
        )  # fmt: skip

    # -- the stack ---------------------------------------------------------------------------
    def name(self, component: str) -> str:
        return f"{self.release}-{component}"

    def service_url(self, name: str) -> str:
        svc = self.get("service", name)
        port = svc["spec"]["ports"][0]["port"]
        return f"http://{svc['spec']['clusterIP']}:{port}"

    @property
    def gateway_url(self) -> str:
        return self.service_url(self.name("gateway"))

    @property
    def auth_url(self) -> str:
        return self.service_url(self.name("auth"))

    def pods(self, component: str) -> list[dict[str, Any]]:
        """Running, not terminating pods of one component, by the chart's labels."""
        items = self.get(
            "pods", "-l", f"app.kubernetes.io/instance={self.release},"
            f"app.kubernetes.io/component={component}",
        )["items"]  # fmt: skip
        return [
            p
            for p in items
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]

    def ready_pods(self, component: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pods(component)
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]

    def admin_token(self) -> str:
        if not self._token:
            secret = self.get("secret", self.name("auth"))
            self._token = base64.b64decode(secret["data"]["admin-token"]).decode()
        return self._token

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.auth_url,
            timeout=10,
            headers={"Authorization": f"Bearer {self.admin_token()}"},
        )

    def new_key(self, credits: int, plan: str = "") -> tuple[str, str]:
        with self.admin() as c:
            r = c.post("/v1/admin/keys", json={"credits": credits, "plan": plan})
            r.raise_for_status()
            return str(r.json()["id"]), str(r.json()["key"])

    def credits(self, key_id: str) -> int:
        with self.admin() as c:
            r = c.get(f"/v1/admin/keys/{key_id}")
            r.raise_for_status()
            return int(r.json()["credits"])

    def routes_of(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        """The route table one gateway pod serves, from its admin port."""
        r = httpx.get(f"http://{pod['status']['podIP']}:9090/routes", timeout=5)
        r.raise_for_status()
        routes: list[dict[str, Any]] = r.json()["routes"]
        return routes


def local_cluster() -> Cluster:
    """Bring up the node, build and import the images, install the chart (each step idempotent)."""
    _run(["bash", str(ROOT / "hack/cluster.sh"), "up"], timeout=300)
    _run(["bash", str(ROOT / "hack/images.sh"), "--local-base", "--import"], timeout=1800)
    cluster = Cluster(STATE / "pki/admin.kubeconfig")
    cluster.kubectl("apply", "-f", "-", stdin=_redis_volume(), namespaced=False)
    cluster.install()
    return cluster


def _redis_volume() -> str:
    """A hostPath PersistentVolume for the in-chart Redis's claim: the node has no provisioner,
    and the Redis fault test needs its data to outlive the pod, as it would on a real volume."""
    path = STATE / "volumes/redis"
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 10001, 10001)  # the chart's runAsUser; hostPath volumes ignore fsGroup
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "tollgate-redis-data"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "tollgate-local",
                "hostPath": {"path": str(path), "type": "Directory"},
            },
        }
    )


def teardown_local(cluster: Cluster) -> None:
    """Uninstall and bring the node down; once (the last test of the tier does it and checks
    what is left, then the session's finalizer finds nothing to do)."""
    if cluster.down:
        return
    cluster.down = True
    try:
        cluster.helm("uninstall", cluster.release, "--wait", timeout=180)
    finally:
        _run(["bash", str(ROOT / "hack/cluster.sh"), "down"], timeout=300)
