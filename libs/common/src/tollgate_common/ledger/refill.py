"""A plan's credit refill (issue 13): its period arithmetic, in UTC, as pure functions.

authorize.lua applies refills lazily: a key record keeps ``refilled_at``, the start of the period
whose refill it got last (Unix ms); the first authorize of a later period applies ONE refill and
stores that period's start, all inside the one EVALSHA, so a boundary crossed by any number of
concurrent requests on any number of replicas refills exactly once. Periods missed while the key
was idle are not made up: a key idle for three months gets one monthly refill, not three.

Periods start on a boundary, at 00:00 UTC for daily and monthly:

- ``hourly``: every hour on the hour;
- ``daily``: every UTC midnight;
- ``monthly``: on ``day_of_month`` (1-31); in a month shorter than that, on its last day (31 means
  "the last day of every month"; 30 is Feb 28/29, Apr 30, ...).

The script does the same arithmetic in integers (Howard Hinnant's days_from_civil /
civil_from_days: Redis's Lua has no ``os.date``); this module uses the standard library's calendar
instead, a second and independent implementation: tests/test_refill.py runs both over many
instants (month ends, leap years, February, day 31) and asserts that they agree.

``mode``: ``add`` adds ``amount``; ``topup`` adds up to ``amount`` but never past ``ceiling``, and
never takes credits away from a balance already above it.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
Interval = Literal["hourly", "daily", "monthly"]
Mode = Literal["add", "topup"]
INTERVALS: tuple[Interval, ...] = ("hourly", "daily", "monthly")
MODES: tuple[Mode, ...] = ("add", "topup")
# The plan hash's fields (layout.plan_key): authorize.lua HMGETs them with rate and burst.
FIELDS = ("refill_amount", "refill_interval", "refill_day", "refill_mode", "refill_ceiling")
REFILLED_AT = "refilled_at"  # the key record's field: start of the last period refilled (ms)


@dataclass(frozen=True, slots=True)
class Refill:
    """A plan's refill as the ledger stores it."""

    amount: int
    interval: Interval
    day_of_month: int = 1  # monthly only
    mode: Mode = "add"
    ceiling: int = 0  # topup only

    def to_fields(self) -> dict[str, int | str]:
        """The plan-hash fields (FIELDS) that hold this refill."""
        return dict(
            zip(
                FIELDS,
                (self.amount, self.interval, self.day_of_month, self.mode, self.ceiling),
                strict=True,
            )
        )

    @classmethod
    def from_fields(cls, d: dict[str, str]) -> Refill | None:
        """The refill of a plan hash (decoded), or None when it has none."""
        amount = int(d.get("refill_amount", 0) or 0)
        interval = d.get("refill_interval", "")
        if amount <= 0 or interval not in INTERVALS:
            return None
        mode = d.get("refill_mode", "add")
        return cls(
            amount=amount,
            interval=interval,  # checked against INTERVALS above
            day_of_month=int(d.get("refill_day", 1) or 1),
            mode="topup" if mode == "topup" else "add",
            ceiling=int(d.get("refill_ceiling", 0) or 0),
        )


def _month_boundary(year: int, month: int, day: int) -> datetime:
    """The monthly boundary in this month: ``day``, or the month's last day when shorter."""
    last = calendar.monthrange(year, month)[1]
    return datetime(year, month, min(day, last), tzinfo=UTC)


def _shift(year: int, month: int, by: int) -> tuple[int, int]:
    n = year * 12 + (month - 1) + by
    return n // 12, n % 12 + 1


def _ms(at: datetime) -> int:
    return int(at.timestamp()) * 1000


def period_start(refill: Refill, now_ms: int) -> int:
    """The start (Unix ms) of the refill period ``now_ms`` falls in."""
    if refill.interval == "hourly":
        return now_ms - now_ms % HOUR_MS
    if refill.interval == "daily":
        return now_ms - now_ms % DAY_MS
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    this = _month_boundary(now.year, now.month, refill.day_of_month)
    if _ms(this) <= now_ms:
        return _ms(this)
    y, m = _shift(now.year, now.month, -1)
    return _ms(_month_boundary(y, m, refill.day_of_month))


def next_refill(refill: Refill, now_ms: int) -> int:
    """The first boundary (Unix ms) after ``now_ms``: when the next refill becomes due."""
    if refill.interval == "hourly":
        return period_start(refill, now_ms) + HOUR_MS
    if refill.interval == "daily":
        return period_start(refill, now_ms) + DAY_MS
    start = datetime.fromtimestamp(period_start(refill, now_ms) / 1000, UTC)
    # the period's start lies in the month of its boundary: the next one is a month on
    y, m = _shift(start.year, start.month, 1)
    return _ms(_month_boundary(y, m, refill.day_of_month))


def due_at(refill: Refill, refilled_at_ms: int | None, now_ms: int) -> int:
    """When the key's next refill applies (Unix ms): the next boundary, or the start of the
    current period when that period's refill is due already (the key's next authorize applies
    it). A key without ``refilled_at`` starts at the current period (authorize.lua)."""
    start = period_start(refill, now_ms)
    if refilled_at_ms is not None and refilled_at_ms < start:
        return start
    return next_refill(refill, now_ms)
