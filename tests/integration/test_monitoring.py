"""Monitoring against the running stack: a real Prometheus (Debian's binary) scrapes a real
gateway, auth service and notifier and evaluates deploy/prometheus/tollgate-rules.yaml; every
metric name the rules and the dashboards use is one the services really export."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.prometheus import (
    PROMETHEUS,
    SYNTHETIC,
    Prometheus,
    dashboard_exprs,
    exported_names,
    metric_names,
    rule_exprs,
)
from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.services import ADMIN_TOKEN, Service, start_auth, start_gateway, start_service

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/tollgate-rules.yaml"
DASHBOARDS = sorted((ROOT / "deploy/helm/tollgate/dashboards").glob("*.json"))
# The test scrapes every second: windows of 2m and a for: of 2m would make it wait minutes.
FAST = {"for": "8s", "window": "[5s]"}

ROUTES = """
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: eod, namespace: default}}
spec:
  pathPrefix: /eod
  strategy: failover
  endpoints: [{{url: "{a}"}}, {{url: "{b}"}}]
  cache: {{ttlSeconds: 60}}
  creditCost: 2
  chargeCacheHits: false
  circuitBreaker: {{failureThreshold: 2, ejectSeconds: 1}}
---
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: free, namespace: default}}
spec:
  pathPrefix: /free
  endpoints: [{{url: "{a}"}}]
  creditCost: 0
  failOpen: true
"""


@dataclass
class Monitored:
    redis: RedisServer
    a: Upstream
    b: Upstream
    auth: Service
    gateway: Service
    notifier: Service
    key: str

    def services(self) -> dict[str, Service]:
        return {"gateway": self.gateway, "auth": self.auth, "notifier": self.notifier}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """redis, two demo upstreams behind one route, auth, a gateway (HTTP auth) and a notifier."""
    work = tmp_path_factory.mktemp("monitored")
    redis = RedisServer(work / "redis")
    a, b = Upstream("a", work), Upstream("b", work)
    routes = work / "routes.yaml"
    routes.write_text(ROUTES.format(a=a.url, b=b.url))
    started: list[Service] = []
    try:
        auth = start_auth(work, redis.url)
        started.append(auth)
        gateway = start_gateway(work, redis.url, ROUTES_FILE=str(routes), AUTH_URL=auth.url)
        started.append(gateway)
        notifier = start_service(
            "notifier", work, {"REDIS_URL": redis.url, "CONSUMER": "n1", "BLOCK_MS": "100"}
        )
        started.append(notifier)
        r = httpx.post(
            f"{auth.url}/v1/admin/keys",
            json={"credits": 1_000_000},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        r.raise_for_status()
        yield Monitored(redis, a, b, auth, gateway, notifier, r.json()["key"])
    finally:
        for s in started:
            s.stop()
        a.stop()
        b.stop()
        redis.stop()


def fast_rules(path: Path) -> Path:
    """The rules file with TollgateRouteDown's for: and windows shortened (FAST)."""
    doc = yaml.safe_load(RULES.read_text())
    [rule] = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "TollgateRouteDown"]
    rule["for"] = FAST["for"]
    rule["expr"] = re.sub(r"\[2m\]", FAST["window"], rule["expr"])
    assert FAST["window"] in rule["expr"]
    path.write_text(yaml.safe_dump(doc))
    return path


def route_down(prom: Prometheus) -> list[dict[str, Any]]:
    return [
        a
        for a in prom.alerts()
        if a["labels"]["alertname"] == "TollgateRouteDown"
        and a["labels"].get("route") == "default/eod"
    ]


def drive(m: Monitored, done: Any, timeout: float, seen: list[str] | None = None) -> None:
    """Cache misses on default/eod, ten a second, until ``done()`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=m.gateway.url, timeout=10) as c:
        for n in itertools.count():
            c.get(f"/api/v1/eod/MON{n}", params={"api_key": m.key, "n": str(time.time())})
            if done():
                return
            assert time.monotonic() < deadline, f"not reached within {timeout}s: {seen}"
            time.sleep(0.1)


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: `make install`")
def test_route_down_fires_when_both_upstreams_fail_and_resolves_when_they_heal(
    monitored: Monitored, tmp_path: Path
) -> None:
    """Both demo upstreams of default/eod broken: TollgateRouteDown goes pending, then firing;
    healed, it resolves. (The test's copy of the rule has for: 8s and 5s windows.)"""
    m = monitored
    targets = {name: [f"127.0.0.1:{s.port}"] for name, s in m.services().items()}
    prom = Prometheus(tmp_path / "prometheus", targets, [fast_rules(tmp_path / "rules.yaml")])
    try:
        states: list[str] = []

        def healthy() -> bool:
            up = prom.targets_up()
            return len(up) == 3 and all(up.values()) and not route_down(prom)

        drive(m, healthy, timeout=60)
        # a while of healthy traffic (more than the windows and the for:) raises nothing
        quiet_until = time.monotonic() + 8
        drive(m, lambda: time.monotonic() > quiet_until or bool(route_down(prom)), timeout=30)
        assert route_down(prom) == []

        m.a.set("error500")
        m.b.set("error500")

        def firing() -> bool:
            alerts = route_down(prom)
            states.extend(a["state"] for a in alerts if not states or states[-1] != a["state"])
            return any(a["state"] == "firing" for a in alerts)

        drive(m, firing, timeout=90, seen=states)
        assert states[0] == "pending"  # for: held it back first
        [alert] = [a for a in route_down(prom) if a["state"] == "firing"]
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"].endswith("#tollgateroutedown")

        m.a.set("ok")
        m.b.set("ok")
        drive(m, lambda: route_down(prom) == [], timeout=90)
    finally:
        m.a.set("ok")
        m.b.set("ok")
        prom.stop()


def used_names() -> set[str]:
    """Every metric name the alert rules and the dashboards select."""
    exprs = rule_exprs(yaml.safe_load(RULES.read_text()))
    for path in DASHBOARDS:
        exprs += dashboard_exprs(json.loads(path.read_text()))
    return {n for e in exprs for n in metric_names(e)}


def scraped(url: str) -> set[str]:
    r = httpx.get(f"{url}/metrics", timeout=10)
    r.raise_for_status()
    return exported_names(r.text)


def test_rules_and_dashboards_use_only_exported_metrics(monitored: Monitored) -> None:
    """Gateway, auth and notifier names in the rules and dashboards are on their live /metrics
    pages (histograms as _bucket/_sum/_count, counters as _total); the operator's are checked
    against a live operator in the next test."""
    exported = set(SYNTHETIC)
    for s in monitored.services().values():
        exported |= scraped(s.url)
    used = {n for n in used_names() if not n.startswith("tollgate_operator_")}
    assert used - exported == set()
    assert {"tollgate_gateway_request_seconds_bucket", "tollgate_notifier_lag"} <= used


@pytest.mark.kube
def test_operator_metrics_in_rules_and_dashboards_are_exported(kube: Path, tmp_path: Path) -> None:
    """The operator's names in the rules and dashboards are on a live operator's /metrics."""
    from tollgate_testkit.services import start_operator

    redis = RedisServer(tmp_path / "redis")
    op = start_operator(tmp_path, redis.url, kube)
    try:
        exported = scraped(op.url)
    finally:
        op.stop()
        redis.stop()
    used = {n for n in used_names() if n.startswith("tollgate_operator_")}
    assert used
    assert used - exported == set()


def test_free_cache_hits_count_the_credits_they_saved(monitored: Monitored) -> None:
    """chargeCacheHits: false: the HIT costs nothing, and its creditCost shows as saved."""
    from prometheus_client.parser import text_string_to_metric_families

    def saved() -> float:
        text = httpx.get(f"{monitored.gateway.url}/metrics", timeout=10).text
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == "tollgate_gateway_credits_saved_total":
                    return float(s.value)
        return 0.0

    before = saved()
    url = f"{monitored.gateway.url}/api/v1/eod/SAVED"
    first = httpx.get(url, params={"api_key": monitored.key})
    second = httpx.get(url, params={"api_key": monitored.key})
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert int(first.headers["x-credits-remaining"]) == int(second.headers["x-credits-remaining"])
    assert saved() == before + 2
