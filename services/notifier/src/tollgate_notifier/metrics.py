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
        # usage export (issue 13)
        self.usage_exported = Counter(
            "tollgate_notifier_usage_exported",
            "Usage events the billing endpoint accepted.",
            ["kind"],
            registry=r,
        )
        self.usage_failures = Counter(
            "tollgate_notifier_usage_export_failures",
            "Failed usage export attempts (one per batch and attempt).",
            registry=r,
        )
        self.usage_dead_letters = Counter(
            "tollgate_notifier_usage_dead_letters",
            "Usage events moved to the usage dead-letter stream.",
            registry=r,
        )
        self.usage_lag = Gauge(
            "tollgate_notifier_usage_lag",
            "Usage events not yet read by the exporter.",
            registry=r,
        )
        self.usage_pending = Gauge(
            "tollgate_notifier_usage_pending",
            "Usage events read but not yet accepted by the endpoint.",
            registry=r,
        )
        self.usage_overrun = Gauge(
            "tollgate_notifier_usage_overrun",
            "1 when the usage stream's bound trimmed events the exporter had not read (lost).",
            registry=r,
        )
        self.usage_resent = Counter(
            "tollgate_notifier_usage_resent",
            "Usage events the outbox sweeper added to the usage stream again: their first XADD "
            "never happened (a gateway or auth killed, Redis refused it), or was not read in time.",
            registry=r,
        )
