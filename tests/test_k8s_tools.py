"""hack/k8s-tools.sh on a machine without Go: it says exactly what to do instead of
`go: command not found` (the root path, apt's golang-go then Go 1.26 from the module proxy,
was run by hand: it needs apt and the network)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the script runs before it looks for Go; no go and no apt-get among them.
TOOLS = ["bash", "env", "id", "python3", "mkdir", "cat", "date", "uname", "tr", "awk", "dirname"]


def hidden_go_run(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`hack/k8s-tools.sh go` with no Go on PATH and /usr/local/go hidden (a private mount)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (bindir / tool).symlink_to(found)
    empty = tmp_path / "empty"
    empty.mkdir()
    hide = f"[ ! -d /usr/local/go ] || mount --bind {empty} /usr/local/go"
    run = (
        f"exec {bindir}/env -i PATH={bindir} HOME={tmp_path} TOLLGATE_TOOLS={tmp_path}/tools"
        f" bash {ROOT}/hack/k8s-tools.sh go"
    )
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{hide} && {run}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_go_it_says_what_to_do(tmp_path: Path) -> None:
    """No Go anywhere and no apt-get: exit 1 with the three ways on, never `command not found`."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding /usr/local/go takes root and unshare(1)")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode:
        pytest.skip("unshare -m is not permitted here (no private mount namespace)")
    out = hidden_go_run(tmp_path)
    assert out.returncode == 1, out.stderr
    assert "go: not found" in out.stderr
    assert "apt-get install golang-go" in out.stderr
    assert "TOLLGATE_SKIP_K8S_TOOLS=1 make test" in out.stderr
    assert "command not found" not in out.stderr
