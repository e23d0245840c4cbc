"""The Makefile itself: plain help off a terminal, pipefail, `make test` installs once."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_has_no_colour_codes_off_a_terminal() -> None:
    """`make help` into a pipe prints the targets without ANSI escapes."""
    out = make("help")
    assert out.returncode == 0
    assert "test-integration" in out.stdout
    assert "\x1b" not in out.stdout


def test_a_failure_inside_a_pipeline_fails_the_recipe() -> None:
    """Recipes run with pipefail: `false | cat` fails its target."""
    out = make("--eval", "probe-pipefail: ; @false | cat", "probe-pipefail")
    assert out.returncode != 0


def test_warm_test_run_skips_the_installer(tmp_path: Path) -> None:
    """`make test` runs hack/install.sh while the install stamp is missing, not once it is fresh."""
    stamp = tmp_path / "install.stamp"
    cold = make("-n", "test", f"INSTALL_STAMP={stamp}")
    assert "bash hack/install.sh" in cold.stdout
    stamp.touch()
    warm = make("-n", "test", f"INSTALL_STAMP={stamp}")
    assert "bash hack/install.sh" not in warm.stdout
    assert "pytest" in warm.stdout


def test_make_test_measures_coverage_against_a_floor(tmp_path: Path) -> None:
    """`make test` runs pytest with coverage; pyproject.toml sets the floor it may not go under."""

    stamp = tmp_path / "install.stamp"
    stamp.touch()
    dry = make("-n", "test", f"INSTALL_STAMP={stamp}")
    assert "pytest --cov" in dry.stdout
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    assert config["report"]["fail_under"] >= 90
    assert "subprocess" in config["run"]["patch"]  # the service processes count too


def test_bench_installs_the_peers_and_test_does_not(tmp_path: Path) -> None:
    """`make bench` runs hack/peers.sh (Envoy, ratelimit, KrakenD); `make test` never needs them."""
    assert "bash hack/peers.sh" in make("-n", "bench").stdout
    stamp = tmp_path / "install.stamp"
    stamp.touch()
    assert "peers.sh" not in make("-n", "test", f"INSTALL_STAMP={stamp}").stdout
