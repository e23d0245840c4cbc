"""A real Prometheus for tests (Debian's ``/usr/bin/prometheus``), and the metric names of
PromQL expressions and of a /metrics page, to check dashboards and rules against what the
services really export.

The PromQL reading is deliberately small: strings, label matchers, ranges and grouping lists are
blanked out, then every identifier that is not a function call or a keyword is a metric name.
That covers the expressions Tollgate writes (selectors, aggregations, binary operators,
histogram_quantile); a name it misses would show as a false "missing" and be seen.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tollgate_testkit.ports import free_port
from tollgate_testkit.procs import Proc

PROMETHEUS = shutil.which("prometheus")
KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan"}
)
# Series every Prometheus makes itself, per target.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of a service's ``{url}/metrics``, summed over the label sets that match
    ``labels`` (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        sample, _, rest = head.partition("{")
        if sample != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's $variables allowed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)
    names: set[str] = set()
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?", s):
        if m.group(2) is None and m.group(1).lower() not in KEYWORDS:
            names.add(m.group(1))
    return names


def variable_expr(query: str) -> str:
    """The PromQL of a Grafana template-variable query (``label_values(expr, label)``)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, re.S)
    return m.group(1) if m else query


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics page offers: its samples, and for each family the names its
    type makes (a labelled counter with no child yet still declares ``name_total``)."""
    names: set[str] = set()
    for fam in text_string_to_metric_families(exposition):
        names.update(s.name for s in fam.samples)
        names.update(fam.name + suffix for suffix in SUFFIXES.get(fam.type, ("",)))
    return names


def rule_exprs(rules: dict[str, Any]) -> list[str]:
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """PromQL of every panel target and template-variable query of a Grafana dashboard."""
    out = [
        t["expr"]
        for p in dashboard.get("panels", [])
        for t in p.get("targets", [])
        if t.get("expr")
    ]
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            out.append(variable_expr(q["query"] if isinstance(q, dict) else q))
    return out


class Prometheus:
    """A Prometheus on a free loopback port scraping ``targets`` (job -> host:port list) every
    second and evaluating ``rule_files`` every second; its TSDB under ``workdir``."""

    def __init__(
        self, workdir: Path, targets: dict[str, list[str]], rule_files: list[Path]
    ) -> None:
        if PROMETHEUS is None:
            raise FileNotFoundError("prometheus (Debian package prometheus)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]}
                for job, hosts in targets.items()
            ],
        }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.proc = Proc(
            [
                PROMETHEUS,
                f"--config.file={path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            log=workdir / "prometheus.log",
        )
        try:
            self.proc.wait_http(f"{self.url}/-/ready", timeout=60)
        except BaseException:
            self.proc.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now (GET /api/v1/alerts)."""
        r = httpx.get(f"{self.url}/api/v1/alerts", timeout=5)
        r.raise_for_status()
        alerts: list[dict[str, Any]] = r.json()["data"]["alerts"]
        return alerts

    def targets_up(self) -> dict[str, bool]:
        """job -> whether every one of its targets was scraped successfully last time."""
        r = httpx.get(f"{self.url}/api/v1/targets", timeout=5)
        r.raise_for_status()
        out: dict[str, bool] = {}
        for t in r.json()["data"]["activeTargets"]:
            job = t["labels"]["job"]
            out[job] = out.get(job, True) and t["health"] == "up"
        return out

    def stop(self) -> None:
        self.proc.stop()
