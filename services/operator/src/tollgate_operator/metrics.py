"""Prometheus metrics of the operator (served on their own port: kopf owns /healthz)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "tollgate_operator_reconciles", "Reconciles by trigger.", ["trigger"], registry=r
        )
        self.errors = Counter("tollgate_operator_errors", "Reconcile errors.", registry=r)
        self.table_version = Gauge(
            "tollgate_operator_table_version", "Version of the published table.", registry=r
        )
        self.routes = Gauge("tollgate_operator_routes", "Routes in the table.", registry=r)
        self.publishes = Counter(
            "tollgate_operator_publishes", "Table versions written.", registry=r
        )
        # The drift timer re-checks every drift_check_seconds: an old value means the operator
        # stopped reaching Redis or stopped reconciling (the TollgateTableNotPublished alert).
        self.table_synced = Gauge(
            "tollgate_operator_table_synced_timestamp_seconds",
            "Unix time the table in Redis was last written or found current.",
            registry=r,
        )
