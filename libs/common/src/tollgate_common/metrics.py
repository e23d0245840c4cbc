"""Per-request metrics without locks: labelled counters and histograms kept as plain numbers,
turned into Prometheus families only when scraped.

prometheus-client's own Counter/Histogram take a lock and validate labels on every update; py-spy
put them at ~6% of a proxied request. A service worker here is one thread on one event loop, so
nothing needs a lock. Register a ``Families`` collector with a registry; the exposition (names,
types, ``_total``, ``le`` buckets) is prometheus-client's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric


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


class Families:
    """A collector of Family objects, for ``registry.register``."""

    def __init__(self, *families: Family) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.collect()


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
