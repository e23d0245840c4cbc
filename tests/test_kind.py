"""The kind workflow without kind: what `make deploy` runs and what hack/kind-e2e.sh references.

kind needs privileged containers, which the development machines do not have; these tests check
the parts that can go wrong without running it: the deploy recipe, the script's syntax, and that
every make target and file the script names exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hack/kind-e2e.sh"
# Paths the script names (deploy/kind/cluster.yaml, hack/k8s-tools.sh, tests/cluster...).
PATHS = re.compile(r"(?<![\w/.-])((?:deploy|hack|tests|libs|services)/[\w./-]*[\w/])")


def make_dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-n", "-s", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )


def built_images() -> list[str]:
    r = subprocess.run(
        ["bash", "hack/images.sh", "--list"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_deploy_loads_every_built_image_before_installing() -> None:
    """make deploy loads exactly what make images builds into the kind cluster, then installs
    the kind values with --wait (pullPolicy Never: a pod of an unloaded image never starts)."""
    r = make_dry_run("deploy")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.replace("\\\n", " ").splitlines()
    load = next(i for i, line in enumerate(lines) if line.startswith("kind load docker-image"))
    helm = next(i for i, line in enumerate(lines) if "helm upgrade --install" in line)
    assert load < helm
    loaded = lines[load].split()
    assert loaded[loaded.index("--name") + 1] == "tollgate"
    assert set(built_images()) <= set(loaded)
    install = lines[helm].split()
    assert install[install.index("-f") + 1] == "deploy/kind/values.yaml"
    assert "--wait" in install


def test_images_list_names_the_services_and_redis() -> None:
    """hack/images.sh --list builds nothing and names every service image and local/redis:7."""
    images = built_images()
    services = ("gateway", "auth", "notifier", "operator", "testkit")
    assert images == [f"tollgate/{s}:dev" for s in services] + ["local/redis:7"]


def test_kind_e2e_script_parses() -> None:
    """bash -n accepts the script."""
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt)")
@pytest.mark.parametrize("script", sorted((SCRIPT.parent).glob("*.sh")), ids=lambda p: p.name)
def test_hack_scripts_are_shellcheck_clean(script: Path) -> None:
    """shellcheck finds no warning in any script under hack/ (kind-e2e, cluster, images...)."""
    r = subprocess.run(
        ["shellcheck", "-S", "warning", str(script)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout


def test_every_make_target_the_script_runs_exists() -> None:
    """Each `make <target>` of the script is a target of the Makefile."""
    targets = re.findall(r"\bmake ([a-z][\w-]*)", SCRIPT.read_text())
    assert {"images", "deploy"} <= set(targets)
    for target in targets:
        r = make_dry_run(target)
        assert r.returncode == 0, f"make {target}: {r.stderr}"


def test_every_file_the_script_names_exists() -> None:
    """Every repository path in the script exists (tests/cluster: the cluster suite it runs)."""
    paths = set(PATHS.findall(SCRIPT.read_text()))
    assert {"deploy/kind/cluster.yaml", "hack/k8s-tools.sh", "tests/cluster"} <= paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []
    assert (ROOT / "tests/cluster/conftest.py").is_file()


def test_the_cluster_suite_is_told_to_use_the_release_it_installed() -> None:
    """pytest runs tests/cluster on the existing cluster, with the release and namespace that
    make deploy installed."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    [run] = [line for line in text.splitlines() if "pytest" in line]
    assert "TOLLGATE_CLUSTER_PROVIDER=existing" in run
    assert 'TOLLGATE_CLUSTER_RELEASE="$RELEASE"' in run
    assert 'TOLLGATE_CLUSTER_NAMESPACE="$NAMESPACE"' in run
    assert run.rstrip().endswith("pytest tests/cluster")
    [deploy] = [line for line in text.splitlines() if line.startswith("make deploy")]
    assert 'RELEASE="$RELEASE"' in deploy
    assert 'NAMESPACE="$NAMESPACE"' in deploy
