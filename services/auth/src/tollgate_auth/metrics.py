"""Prometheus metrics of the auth service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "tollgate_auth_decisions",
            "Authorize decisions by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.refunds = Counter(
            "tollgate_auth_refunds", "Refunds by result.", ["result"], registry=self.registry
        )
        self.latency = Histogram(
            "tollgate_auth_authorize_seconds",
            "Authorize latency (Redis included).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=self.registry,
        )
        self.store_errors = Counter(
            "tollgate_auth_store_errors", "Redis errors.", registry=self.registry
        )
