"""Prometheus metrics of the gateway. Labels are route names and upstream origins from the route
table, never raw paths, so cardinality stays bounded by configuration.

The per-request metrics are tollgate_common.metrics families: plain numbers exported at scrape
time (prometheus-client's locks and label validation were ~6% of a proxied request).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric

from tollgate_common.metrics import Families, Family

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


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
        self.fail_open = Family(
            "tollgate_gateway_auth_fail_open",
            "Requests served unchecked and uncharged because auth was unreachable (failOpen).",
            ("route",),
        )
        self.refunds = Family(
            "tollgate_gateway_refunds",
            "Refund tries by result: refunded, absent (no such charge: a no-op), retry.",
            ("result",),
        )
        # Credits as the ledger debited them (the plan's price for the path, else the route's).
        self.credits_charged = Family(
            "tollgate_gateway_credits_charged", "Credits debited.", ("route",)
        )
        self.credits_refunded = Family(
            "tollgate_gateway_credits_refunded",
            "Credits given back (request not served).",
            ("route",),
        )
        self.credits_saved = Family(
            "tollgate_gateway_credits_saved",
            "Credits not charged because the cache answered (the route's creditCost).",
            ("route",),
        )
        self.rate_limited = Family(
            "tollgate_gateway_rate_limited",
            "Requests refused by the rate limit.",
            ("route", "plan"),
        )
        self.streams = Family(
            "tollgate_gateway_streamed_responses",
            "Answers over the response buffer, streamed, by how they ended: complete, "
            "client_gone, upstream_failed (cut short mid-body: refunded, and an event).",
            ("route", "result"),
        )
        self.inflight = Inflight()
        self.refunds_pending = Inflight()
        self._families = Families(
            self.requests,
            self.latency,
            self.upstream_latency,
            self.cache,
            self.ejections,
            self.auth,
            self.fail_open,
            self.refunds,
            self.credits_charged,
            self.credits_refunded,
            self.credits_saved,
            self.rate_limited,
            self.streams,
        )
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
        # Set by each scrape from a PING of both clients (app.py), as redis_exporter's redis_up:
        # the follower's own view exists only when the table comes from Redis.
        self.redis_up = Gauge(
            "tollgate_gateway_redis_up",
            "1 if both Redis clients answered a PING at the last scrape, else 0.",
            registry=r,
        )

    def child(self, metric: Family, *labels: str) -> Any:
        """``metric.labels(*labels)``: one dict lookup on the hot path."""
        return metric.labels(*labels)

    def collect(self) -> Iterator[Metric]:
        """The registry's scrape: the per-request numbers as Prometheus families."""
        yield from self._families.collect()
        g = GaugeMetricFamily("tollgate_gateway_inflight", "Requests in flight.")
        g.add_metric([], float(self.inflight.value))
        yield g
        r = GaugeMetricFamily("tollgate_gateway_refunds_pending", "Refunds owed, not landed yet.")
        r.add_metric([], float(self.refunds_pending.value))
        yield r
