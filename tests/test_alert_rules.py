"""The Prometheus alert rules: promtool accepts them, every alert has a unit test that passes
(deploy/prometheus/tests/), a severity, a summary and a runbook section in README.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy/prometheus/tollgate-rules.yaml"
CHART_RULES = ROOT / "deploy/helm/tollgate/rules/tollgate-rules.yaml"
UNIT_TESTS = sorted((ROOT / "deploy/prometheus/tests").glob("*.yaml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: `make install` (Debian package prometheus)"
)


def alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent
    )


def test_the_plain_rules_file_is_the_charts() -> None:
    """One source of truth: deploy/prometheus/tollgate-rules.yaml is the chart's file."""
    assert RULES.resolve() == CHART_RULES.resolve()


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    """promtool check rules: valid PromQL, durations, templates."""
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
@pytest.mark.parametrize("unit", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(unit: Path) -> None:
    """promtool test rules: each alert fires, stays quiet and resolves as its tests say."""
    r = promtool("test", "rules", str(unit))
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_unit_test() -> None:
    """Each alert is the alertname of at least one promtool test."""
    tested = {
        t["alertname"]
        for unit in UNIT_TESTS
        for case in yaml.safe_load(unit.read_text())["tests"]
        for t in case.get("alert_rule_test", [])
    }
    assert {a["alert"] for a in alerts()} - tested == set()


def test_every_alert_has_a_severity_summary_and_runbook_section() -> None:
    """severity is critical or warning; summary and description are set; runbook_url points at
    a README.md section named after the alert."""
    headings = {
        anchor(line.lstrip("#"))
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("#")
    }
    for a in alerts():
        assert a["labels"]["severity"] in {"critical", "warning"}, a["alert"]
        assert a["annotations"]["summary"], a["alert"]
        assert a["annotations"]["description"], a["alert"]
        url = a["annotations"]["runbook_url"]
        assert url.split("#")[0].endswith("/README.md"), a["alert"]
        assert url.split("#")[1] == anchor(a["alert"]), a["alert"]
        assert anchor(a["alert"]) in headings, f"README.md has no section {a['alert']}"
