"""Usage read back from the ledger's hourly buckets (pure): the range a query may read, the hours
it covers, buckets by hour or day, totals per route, per key and overall.

A bucket in Redis (tollgate_common.ledger.layout.usage_key) is one hash per API key and hour with
fields ``<counter>:<route>``; authorize.lua and refund.lua write them, nothing else does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from tollgate_auth.errors import Invalid
from tollgate_auth.models import KeyInfo, KeyTotal, KeyUsage, UsageBucket, UsageTotals
from tollgate_common.ledger.layout import COUNTERS, HOUR_MS

Counts = dict[str, int]
ByRoute = dict[str, Counts]
Granularity = Literal["hour", "day"]
HOUR = HOUR_MS // 1000
DAY = 24 * HOUR
MAX_HOURS = {"hour": 31 * 24, "day": 366 * 24}
"""The longest range one query may read, in hour buckets (one HGETALL each): 31 days by the hour,
a year by the day."""


def zero() -> Counts:
    return dict.fromkeys(COUNTERS, 0)


def hours(start: int, end: int) -> list[int]:
    """The hour buckets (their first second) that overlap [start, end)."""
    first = start - start % HOUR
    return list(range(first, end, HOUR))


def parse(raw: Mapping[bytes, bytes]) -> ByRoute:
    """One bucket's hash (as redis-py returns it) as counts by route; fields that are not ours
    are ignored."""
    out: ByRoute = {}
    for field, value in raw.items():
        counter, _, route = field.decode().partition(":")
        if counter not in COUNTERS:
            continue
        try:
            n = int(value)
        except ValueError:
            continue
        out.setdefault(route, zero())[counter] += n
    return out


def add(into: Counts, more: Mapping[str, int]) -> None:
    for counter, n in more.items():
        into[counter] = into.get(counter, 0) + n


def total(by_route: ByRoute) -> Counts:
    out = zero()
    for counts in by_route.values():
        add(out, counts)
    return out


def merge(into: ByRoute, more: ByRoute) -> None:
    for route, counts in more.items():
        add(into.setdefault(route, zero()), counts)


def bucket_start(hour: int, granularity: Granularity) -> int:
    return hour if granularity == "hour" else hour - hour % DAY


def buckets(
    per_hour: Iterable[tuple[int, ByRoute]], granularity: Granularity
) -> list[tuple[int, ByRoute]]:
    """Hour buckets regrouped by hour or UTC day, empty ones left out, oldest first."""
    grouped: dict[int, ByRoute] = {}
    for hour, by_route in per_hour:
        if by_route:
            merge(grouped.setdefault(bucket_start(hour, granularity), {}), by_route)
    return sorted(grouped.items())


def bounded(start: int, end: int, granularity: Granularity) -> tuple[int, int]:
    """The range, refused (422 naming the field) when empty, before 1970 or too long to read."""
    if start < 0:
        raise Invalid("from: must not be before 1970")
    if end <= start:
        raise Invalid("to: must be after from")
    most = MAX_HOURS[granularity]
    if len(hours(start, end)) > most:
        raise Invalid(f"to: at most {most // 24} days after from with granularity={granularity}")
    return start, end


def key_usage(
    key_id: str, start: int, end: int, granularity: Granularity, raw: list[dict[bytes, bytes]]
) -> KeyUsage:
    """One key's answer from its raw hour buckets (``raw``: one per hour of ``hours``)."""
    per_hour = [(h, parse(r)) for h, r in zip(hours(start, end), raw, strict=True)]
    routes: ByRoute = {}
    for _, by_route in per_hour:
        merge(routes, by_route)
    return KeyUsage(
        key_id=key_id,
        start=start - start % HOUR,
        end=end,
        granularity=granularity,
        total=total(routes),
        routes=routes,
        buckets=[
            UsageBucket(start=at, counts=total(r), routes=r)
            for at, r in buckets(per_hour, granularity)
        ],
    )


def totals(
    start: int, end: int, keys: list[tuple[KeyInfo, list[dict[bytes, bytes]]]]
) -> UsageTotals:
    """Every key's totals over the range; keys without usage left out."""
    rows = []
    for info, raw in keys:
        by_route: ByRoute = {}
        for r in raw:
            merge(by_route, parse(r))
        if by_route:
            rows.append(
                KeyTotal(key_id=info.id, prefix=info.prefix, name=info.name, total=total(by_route))
            )
    return UsageTotals(start=start - start % HOUR, end=end, keys=rows)
