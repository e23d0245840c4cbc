"""Prometheus metrics of the gateway. Labels are route names and upstream origins from the route
table, never raw paths, so cardinality stays bounded by configuration.

The per-request metrics are plain numbers that a collector turns into Prometheus families at
scrape time. prometheus-client's own Counter/Histogram take a lock and validate on every update:
py-spy put them at ~6% of a proxied request, and a gateway worker is one thread on one event loop,
so nothing here needs a lock. The exposition is prometheus-client's (same names and types).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        self.counts[bisect_left(self.bounds, value)] += 1  # le is inclusive, as Prometheus's


class Family:
    """A labelled counter or histogram; ``labels(...)`` returns its (memoized) child."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...], buckets: Any = None):
        self.name = name
        self.doc = doc
        self.labelnames = labelnames
        self.buckets: tuple[float, ...] | None = tuple(buckets) if buckets else None
        self.children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}")
            b = self.buckets
            child = self.children[values] = HistogramChild(b) if b else CounterChild()
        return child

    def collect(self) -> Metric:
        names = list(self.labelnames)
        if self.buckets is None:
            c = CounterMetricFamily(self.name, self.doc, labels=names)
            for values, child in self.children.items():
                c.add_metric(list(values), child.value)
            return c
        h = HistogramMetricFamily(self.name, self.doc, labels=names)
        for values, child in self.children.items():
            cumulative, running = [], 0
            for bound, count in zip([*self.buckets, float("inf")], child.counts, strict=True):
                running += count
                cumulative.append((_le(bound), float(running)))
            h.add_metric(list(values), cumulative, child.sum)
        return h


class Inflight:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Family(
            "tollgate_gateway_requests", "Proxied requests.", ("route", "status")
        )
        self.latency = Family(
            "tollgate_gateway_request_seconds", "Whole-request latency.", ("route",), BUCKETS
        )
        self.upstream_latency = Family(
            "tollgate_gateway_upstream_seconds",
            "Latency of one upstream attempt.",
            ("route", "upstream", "verdict"),
            BUCKETS,
        )
        self.cache = Family(
            "tollgate_gateway_cache", "Cache lookups by result.", ("route", "result")
        )
        self.ejections = Family(
            "tollgate_gateway_ejections",
            "Upstreams ejected by the circuit breaker.",
            ("route", "upstream"),
        )
        self.auth = Family(
            "tollgate_gateway_auth_decisions", "Authorization decisions by reason.", ("reason",)
        )
        self.inflight = Inflight()
        self._families = [
            self.requests,
            self.latency,
            self.upstream_latency,
            self.cache,
            self.ejections,
            self.auth,
        ]
        r.register(self)  # collect() below
        # Set rarely: prometheus-client's own classes are fine here.
        self.table_version = Gauge(
            "tollgate_gateway_route_table_version",
            "Version of the route table in force.",
            registry=r,
        )
        self.routes = Gauge("tollgate_gateway_routes", "Routes in the table.", registry=r)
        self.events_dropped = Counter(
            "tollgate_gateway_events_dropped",
            "Events not appended (queue full or Redis down).",
            registry=r,
        )

    def child(self, metric: Family, *labels: str) -> Any:
        """``metric.labels(*labels)``: one dict lookup on the hot path."""
        return metric.labels(*labels)

    def collect(self) -> Iterator[Metric]:
        """The registry's scrape: the per-request numbers as Prometheus families."""
        for family in self._families:
            yield family.collect()
        g = GaugeMetricFamily("tollgate_gateway_inflight", "Requests in flight.")
        g.add_metric([], float(self.inflight.value))
        yield g


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
