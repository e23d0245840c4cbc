"""Prometheus metrics of the gateway. Labels are route names and upstream origins from the route
table, never raw paths, so cardinality stays bounded by configuration."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tollgate_gateway_requests", "Proxied requests.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "tollgate_gateway_request_seconds",
            "Whole-request latency.",
            ["route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "tollgate_gateway_upstream_seconds",
            "Latency of one upstream attempt.",
            ["route", "upstream", "verdict"],
            buckets=BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "tollgate_gateway_cache", "Cache lookups by result.", ["route", "result"], registry=r
        )
        self.ejections = Counter(
            "tollgate_gateway_ejections",
            "Upstreams ejected by the circuit breaker.",
            ["route", "upstream"],
            registry=r,
        )
        self.inflight = Gauge("tollgate_gateway_inflight", "Requests in flight.", registry=r)
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
        self.auth = Counter(
            "tollgate_gateway_auth_decisions",
            "Authorization decisions by reason.",
            ["reason"],
            registry=r,
        )
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, memoized: prometheus-client validates and locks on every
        labels() call, a measurable share of a request on the proxy path. Label values come from
        bounded sets (routes, statuses, upstreams), so the memo is bounded too."""
        key = (metric._name, labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c
