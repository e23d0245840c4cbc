"""Plan refills (issue 13): authorize.lua on a real redis-server with the clock given, and its
period arithmetic against the independent Python twin (ledger/refill.py) over many instants."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tollgate_common.contracts.events import EventType
from tollgate_common.ledger import Decision, Ledger, LedgerSettings
from tollgate_common.ledger.alerts import events_for
from tollgate_common.ledger.apikeys import MAX_CREDITS, key_hash, new_charge_id
from tollgate_common.ledger.layout import hour_of, plan_copy_key, plan_key, record_key, usage_key
from tollgate_common.ledger.plancopy import PlanCopies
from tollgate_common.ledger.refill import (
    REFILLED_AT,
    Refill,
    due_at,
    next_refill,
    period_start,
)
from tollgate_common.redis.client import create_redis

KEY = "tg_refillab_" + "s" * 43
KEY_ID = "refillab"
RECORD = record_key(KEY_ID, key_hash(KEY))
HOURLY = Refill(amount=50, interval="hourly")


def ms(*civil: int) -> int:
    """Unix ms of a UTC civil time (year, month, day[, hour, minute, second])."""
    return int(datetime(*civil, tzinfo=UTC).timestamp()) * 1000  # type: ignore[arg-type,misc]


T0 = ms(2026, 3, 10, 12, 30)
Give = Callable[..., Awaitable[Ledger]]


@pytest.fixture
async def give(redis_url: str) -> AsyncIterator[Give]:
    """``give(refill, credits=, refilled_at=)``: the key on a plan with that refill (None: a plan
    without one); the key's last refill at ``refilled_at`` (None: the field left out)."""
    client = create_redis(redis_url)
    await client.flushdb()
    ledger = Ledger(client, LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60))

    async def make(
        refill: Refill | None, credits: int = 100, refilled_at: int | None = None
    ) -> Ledger:
        plan: dict[str, Any] = {"rate": 0, "burst": 1}
        if refill is not None:
            plan.update(refill.to_fields())
        for name in (plan_key("p"), RECORD):  # two slots: one DEL each
            await client.delete(name)
        await client.hset(plan_key("p"), mapping=plan)
        record: dict[str, Any] = {"id": KEY_ID, "credits": credits, "plan": "p"}
        if refilled_at is not None:
            record[REFILLED_AT] = refilled_at
        await client.hset(RECORD, mapping=record)
        await PlanCopies().sync(client, RECORD, plan_copy_key(KEY_ID))
        return ledger

    yield make
    await ledger.drain()
    await client.aclose()


async def ask(ledger: Ledger, at: int, cost: int = 1, **kw: Any) -> Decision:
    return await ledger.authorize(KEY, "/x", cost, "10.0.0.1", route="r", now_ms=at, **kw)


async def credits(ledger: Ledger) -> int:
    return int(await ledger.redis.hget(RECORD, "credits"))


async def test_a_boundary_crossed_by_100_concurrent_requests_refills_once(give: Give) -> None:
    """100 concurrent authorizes just past an hour boundary: one refill of 50, 100 debits."""
    ledger = await give(HOURLY, credits=1000, refilled_at=period_start(HOURLY, T0))
    boundary = next_refill(HOURLY, T0)
    answers = await asyncio.gather(*(ask(ledger, boundary + i) for i in range(100)))
    assert all(d.allowed for d in answers)
    assert [d.refilled for d in answers if d.refilled] == [50]
    assert await credits(ledger) == 1000 + 50 - 100
    counts = await ledger.redis.hgetall(usage_key(KEY_ID, hour_of(boundary)))
    assert int(counts[b"refilled:r"]) == 50
    assert int(await ledger.redis.hget(RECORD, REFILLED_AT)) == boundary


async def test_no_refill_within_the_period(give: Give) -> None:
    """A key refilled in this period is not refilled again before the next boundary."""
    ledger = await give(HOURLY, credits=10, refilled_at=period_start(HOURLY, T0))
    d = await ask(ledger, T0)
    assert (d.refilled, d.credits_remaining) == (0, 9)
    assert d.next_refill == next_refill(HOURLY, T0) / 1000


async def test_missed_periods_refill_once(give: Give) -> None:
    """A key idle for ten hours gets one refill, not ten."""
    ledger = await give(HOURLY, credits=0, refilled_at=period_start(HOURLY, T0))
    d = await ask(ledger, T0 + 10 * 3_600_000, cost=0)
    assert d.refilled == 50
    assert await credits(ledger) == 50


async def test_a_key_new_to_the_refill_starts_at_the_current_period(give: Give) -> None:
    """No refilled_at yet (key older than its plan's refill): no refill now, one at the next
    boundary."""
    ledger = await give(HOURLY, credits=5)
    assert (await ask(ledger, T0, cost=0)).refilled == 0
    assert int(await ledger.redis.hget(RECORD, REFILLED_AT)) == period_start(HOURLY, T0)
    assert (await ask(ledger, next_refill(HOURLY, T0), cost=0)).refilled == 50


@pytest.mark.parametrize(
    ("before", "after"), [(10, 40), (80, 100), (100, 100), (150, 150)], ids=str
)
async def test_topup_adds_up_to_the_ceiling_and_never_lowers(
    give: Give, before: int, after: int
) -> None:
    """topup of 30 to a ceiling of 100: 10 -> 40, 80 -> 100, and a balance above stays."""
    topup = Refill(amount=30, interval="daily", mode="topup", ceiling=100)
    ledger = await give(topup, credits=before, refilled_at=period_start(topup, T0))
    d = await ask(ledger, next_refill(topup, T0), cost=0)
    assert await credits(ledger) == after
    assert d.refilled == after - before


async def test_add_adds_the_amount_whatever_the_balance(give: Give) -> None:
    """add: 150 + 30 = 180, no ceiling."""
    add = Refill(amount=30, interval="daily")
    ledger = await give(add, credits=150, refilled_at=period_start(add, T0))
    await ask(ledger, next_refill(add, T0), cost=0)
    assert await credits(ledger) == 180


async def test_add_stops_at_the_ledgers_bound(give: Give) -> None:
    """A refill never takes a balance past MAX_CREDITS (a later request would fail)."""
    add = Refill(amount=1000, interval="daily")
    ledger = await give(add, credits=MAX_CREDITS - 10, refilled_at=period_start(add, T0))
    await ask(ledger, next_refill(add, T0), cost=0)
    assert await credits(ledger) == MAX_CREDITS


async def test_monthly_on_the_31st_falls_on_the_last_day_of_short_months(give: Give) -> None:
    """day_of_month 31: Jan 31, then Feb 28 (2026 is no leap year), then Mar 31."""
    monthly = Refill(amount=7, interval="monthly", day_of_month=31)
    ledger = await give(monthly, credits=0, refilled_at=ms(2026, 1, 31))
    assert (await ask(ledger, ms(2026, 2, 27, 23, 59, 59), cost=0)).refilled == 0
    d = await ask(ledger, ms(2026, 2, 28), cost=0)
    assert d.refilled == 7
    assert d.next_refill == ms(2026, 3, 31) / 1000
    assert (await ask(ledger, ms(2026, 3, 30, 23), cost=0)).refilled == 0
    assert (await ask(ledger, ms(2026, 3, 31, 0, 0, 1), cost=0)).refilled == 7
    assert await credits(ledger) == 14


async def test_monthly_on_the_15th(give: Give) -> None:
    """day_of_month 15: due on the 15th at 00:00 UTC, once."""
    monthly = Refill(amount=7, interval="monthly", day_of_month=15)
    ledger = await give(monthly, credits=0, refilled_at=ms(2026, 2, 15))
    assert (await ask(ledger, ms(2026, 3, 14, 23, 59), cost=0)).refilled == 0
    assert (await ask(ledger, ms(2026, 3, 15), cost=0)).refilled == 7
    assert (await ask(ledger, ms(2026, 4, 1), cost=0)).refilled == 0


async def test_refund_after_a_refill(give: Give) -> None:
    """A charge of the last period refunded after the refill: the refill and the charge back."""
    ledger = await give(HOURLY, credits=10, refilled_at=period_start(HOURLY, T0))
    cid = new_charge_id(KEY_ID)
    assert (await ask(ledger, T0, cost=4, charge_id=cid)).credits_remaining == 6
    assert (await ask(ledger, next_refill(HOURLY, T0), cost=0)).refilled == 50
    assert await ledger.refund(cid) == 60


async def test_a_refill_lets_a_request_through_that_the_old_balance_would_refuse(
    give: Give,
) -> None:
    """The refill comes before the credit check: 0 credits and a refill due is no 402."""
    ledger = await give(HOURLY, credits=0, refilled_at=period_start(HOURLY, T0))
    assert (await ask(ledger, T0)).reason == "no_credits"
    d = await ask(ledger, next_refill(HOURLY, T0), cost=3)
    assert (d.allowed, d.credits_remaining) == (True, 47)


async def test_a_plan_without_a_refill_writes_nothing_of_it(give: Give) -> None:
    """No refill: no refilled_at, no next_refill, the balance only debited."""
    ledger = await give(None, credits=10)
    d = await ask(ledger, T0)
    assert (d.refilled, d.next_refill, d.credits_remaining) == (0, None, 9)
    assert await ledger.redis.hget(RECORD, REFILLED_AT) is None


async def test_me_is_free_and_applies_a_due_refill(give: Give) -> None:
    """The /me step: no debit, no usage request; a due refill applied and counted."""
    ledger = await give(HOURLY, credits=10, refilled_at=period_start(HOURLY, T0))
    boundary = next_refill(HOURLY, T0)
    d = await ledger.me(KEY, "10.0.0.1", now_ms=boundary)
    assert (d.allowed, d.cost, d.refilled, d.credits_remaining) == (True, 0, 50, 60)
    counts = await ledger.redis.hgetall(usage_key(KEY_ID, hour_of(boundary)))
    assert counts == {b"refilled:_tollgate/me": b"50"}


def test_a_refill_raises_credits_refilled_with_the_owner_attributes() -> None:
    """events_for: credits.refilled with the key id and balance (the owner webhook's)."""
    d = Decision(allowed=True, key_id=KEY_ID, credits_remaining=60, refilled=50, event="low")
    events = events_for(d, "r", "10.0.0.1", 20, "auth")
    assert [e.type for e in events] == [EventType.CREDITS_REFILLED, EventType.CREDITS_LOW]
    assert events[0].attributes == {"key_id": KEY_ID, "credits": "60", "refilled": "50"}


# --- the script's arithmetic against refill.py's


def instants() -> list[int]:
    """Month ends and starts (and a millisecond either side) over leap and common years,
    centuries included, and random instants."""
    out = []
    for year in (1970, 2000, 2024, 2025, 2100, 2400):
        for month in range(1, 13):
            for day in (1, 27, 28, 29, 30, 31):
                try:
                    at = ms(year, month, day)
                except ValueError:
                    continue
                out += [at - 1, at, at + 43_200_000]
    rng = random.Random(13)
    out += [rng.randrange(0, ms(2200, 1, 1)) for _ in range(200)]
    # ascending: the stored period start only moves forward, so no reset between instants
    return sorted(at for at in out if at >= 0)


REFILLS = [
    HOURLY,
    Refill(amount=1, interval="daily"),
    *(Refill(amount=1, interval="monthly", day_of_month=d) for d in (1, 2, 15, 28, 29, 30, 31)),
]


async def test_the_script_and_refill_py_agree(give: Give) -> None:
    """Over every instant and refill: the period start the script stores and the next refill it
    answers are the ones refill.py computes."""
    wrong = []
    for refill in REFILLS:
        ledger = await give(refill, credits=0, refilled_at=-(10**13))
        for at in instants():
            d = await ledger.me(KEY, "10.0.0.1", now_ms=at)
            stored = int(await ledger.redis.hget(RECORD, REFILLED_AT))
            want = (period_start(refill, at), next_refill(refill, at))
            got = (stored, int(d.next_refill * 1000) if d.next_refill is not None else None)
            if got != want:
                wrong.append((refill, at, got, want))
    assert not wrong, wrong[:5]


def test_periods_are_contiguous() -> None:
    """refill.py: a period starts no later than the instant, and the next begins after it."""
    for refill in REFILLS:
        for at in instants():
            start, nxt = period_start(refill, at), next_refill(refill, at)
            assert start <= at < nxt
            assert period_start(refill, nxt) == nxt


def test_due_at() -> None:
    """A refill pending since the current period started is due at that start; otherwise at the
    next boundary."""
    assert due_at(HOURLY, period_start(HOURLY, T0) - 1, T0) == period_start(HOURLY, T0)
    assert due_at(HOURLY, period_start(HOURLY, T0), T0) == next_refill(HOURLY, T0)
    assert due_at(HOURLY, None, T0) == next_refill(HOURLY, T0)
