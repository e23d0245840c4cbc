"""The Grafana dashboards: filterable by namespace, job and instance, and windows that follow
the scrape interval ($__rate_interval) instead of a fixed [1m] that is gappy at 30 s scrapes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tollgate_testkit.prometheus import dashboard_exprs

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "deploy/helm/tollgate/dashboards").glob("*.json"))
# Windows that are a choice, not a sampling artefact: the dashboard's range, a stated hour.
CHOSEN_WINDOWS = {"$__rate_interval", "$__range", "1h"}


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def panel_exprs(d: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in d["panels"] for t in p["targets"]]


def test_there_are_two_dashboards() -> None:
    """The overview and the credit economy."""
    assert [p.name for p in DASHBOARDS] == ["tollgate-credits.json", "tollgate.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_namespace_job_and_instance_variables(path: Path) -> None:
    """Each dashboard has namespace, job and instance variables, and every selector uses all
    three."""
    d = load(path)
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "namespace", "job", "instance"]
    for expr in panel_exprs(d):
        for selector in re.findall(r"\{[^}]*\}", expr):
            for var in ("namespace", "job", "instance"):
                assert f'{var}=~"${var}"' in selector, expr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_rate_windows_follow_the_scrape_interval(path: Path) -> None:
    """No fixed [1m]/[5m] windows: $__rate_interval (or the dashboard range, or a stated 1h)."""
    for expr in dashboard_exprs(load(path)):
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window in CHOSEN_WINDOWS, expr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panel_ids_are_unique_and_every_panel_queries(path: Path) -> None:
    """Grafana keys panels by id; a panel without a target shows nothing."""
    d = load(path)
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] for p in d["panels"])
