"""Prometheus metrics of the notifier."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events = Counter("tollgate_notifier_events", "Events consumed.", ["type"], registry=r)
        self.deliveries = Counter(
            "tollgate_notifier_deliveries",
            "Notifications delivered.",
            ["sink", "status"],
            registry=r,
        )
        self.failures = Counter(
            "tollgate_notifier_failures", "Failed delivery attempts.", ["sink"], registry=r
        )
        self.dead_letters = Counter(
            "tollgate_notifier_dead_letters",
            "Entries moved to the dead-letter stream.",
            registry=r,
        )
        self.lag = Gauge(
            "tollgate_notifier_lag", "Stream entries not yet delivered to the group.", registry=r
        )
        self.pending = Gauge(
            "tollgate_notifier_pending", "Entries delivered but not acknowledged.", registry=r
        )
