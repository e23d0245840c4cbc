"""Prometheus metrics of the auth service. The per-request ones are tollgate_common.metrics
families (plain numbers, no lock per update: authorize runs on every gateway request)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from tollgate_common.metrics import Families, Family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Family(
            "tollgate_auth_decisions", "Authorize decisions by reason.", ("reason",)
        )
        self.refunds = Family("tollgate_auth_refunds", "Refunds by result.", ("result",))
        latency = Family(
            "tollgate_auth_authorize_seconds",
            "Authorize latency (Redis included).",
            (),
            (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        )
        self.latency = latency.labels()
        self.registry.register(Families(self.decisions, self.refunds, latency))
        self.store_errors = Counter(
            "tollgate_auth_store_errors", "Redis errors.", registry=self.registry
        )
