"""Last of the tier (files run in name order): `hack/cluster.sh down` stops every process of the
cluster, by PID, and leaves no pod, mount, iptables chain, interface or address behind. The
container runtime (containerd, dockerd) stays for the rest of `make test`, which stops it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tollgate_testkit.cluster import STATE, Cluster, teardown_local


def host(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def test_down_leaves_nothing_behind(cluster: Cluster) -> None:
    if os.environ.get("TOLLGATE_CLUSTER_PROVIDER", "local") != "local":
        pytest.skip("the cluster is not ours to tear down")
    if os.environ.get("TOLLGATE_CLUSTER_KEEP") == "1":
        pytest.skip("TOLLGATE_CLUSTER_KEEP=1 keeps the cluster up")
    runtime = {"containerd.pid", "dockerd.pid"}
    files = [p for p in (STATE / "pids").glob("*.pid") if p.name not in runtime]
    pids = [int(p.read_text()) for p in files]
    assert pids, "no PID files: the cluster was not started by hack/cluster.sh"
    teardown_local(cluster)

    alive = [p for p in pids if Path(f"/proc/{p}").exists()]
    assert alive == []
    assert [p for p in (STATE / "pids").glob("*.pid") if p.name not in runtime] == []
    mounts = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(("/var/lib/kubelet", "/run/netns"))
        or "/k8s.io/" in line.split()[1]
    ]
    assert mounts == []
    rules = [r for r in host("iptables-save").splitlines() if "KUBE-" in r or "CNI-" in r]
    assert rules == []
    assert "cni0" not in host("ip", "-o", "link")
    assert "10.200.0.1/" not in host("ip", "-o", "addr", "show", "dev", "lo")
    assert not Path("/etc/cni/net.d/10-tollgate.conflist").exists()
