"""GCRA as authorize.lua computes it, on a real redis-server with the clock given: the cases the
removed Python twin (tollgate_auth/ratelimit.py) was tested with, now against the one real copy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tollgate_common.ledger import Decision, Ledger, LedgerSettings
from tollgate_common.ledger.apikeys import key_hash
from tollgate_common.ledger.layout import plan_copy_key, plan_key, record_key
from tollgate_common.ledger.plancopy import PlanCopies
from tollgate_common.redis.client import create_redis

KEY = "tg_gcragcra_" + "s" * 43
T0 = 50_000_000  # a clock far from 0, so no arithmetic leans on an idle TAT of 0
Ask = Callable[[int], Awaitable[Decision]]


@pytest.fixture
async def plan(redis_url: str) -> AsyncIterator[Callable[[float, int], Awaitable[Ask]]]:
    """Give the key a plan of ``rate`` per second and ``burst``; returns ``ask(now_ms)``."""
    client = create_redis(redis_url)
    ledger = Ledger(client, LedgerSettings())

    async def make(rate: float, burst: int) -> Ask:
        await client.hset(plan_key("p"), mapping={"rate": rate, "burst": burst})
        record = {"id": "gcragcra", "credits": 1000, "plan": "p"}
        await client.hset(record_key("gcragcra", key_hash(KEY)), mapping=record)
        copy = plan_copy_key("gcragcra")
        await PlanCopies().sync(client, record_key("gcragcra", key_hash(KEY)), copy)

        async def ask(now_ms: int) -> Decision:
            return await ledger.authorize(KEY, "/x", 1, "10.0.0.1", now_ms=T0 + now_ms)

        return ask

    yield make
    await ledger.drain()
    await client.aclose()


async def run(ask: Ask, times: list[int]) -> list[bool]:
    return [(await ask(now)).allowed for now in times]


async def test_burst_then_limited(plan: Callable[[float, int], Awaitable[Ask]]) -> None:
    """From idle, exactly `burst` requests pass at once, then the limit bites."""
    ask = await plan(1, 4)
    assert await run(ask, [1000] * 6) == [True] * 4 + [False] * 2


async def test_refills_at_the_rate(plan: Callable[[float, int], Awaitable[Ask]]) -> None:
    """After one interval, one more request passes."""
    ask = await plan(1, 2)
    assert await run(ask, [1000, 1000, 1999, 2000]) == [True, True, False, True]


async def test_retry_after_is_the_wait_for_one_more(
    plan: Callable[[float, int], Awaitable[Ask]],
) -> None:
    """A limited answer says how long until one request is allowed."""
    ask = await plan(2, 1)
    assert (await ask(10_000)).allowed
    limited = await ask(10_000)
    assert limited.reason == "rate_limited"
    assert limited.retry_after == 0.5


async def test_remaining_counts_down(plan: Callable[[float, int], Awaitable[Ask]]) -> None:
    """remaining is the rest of the burst."""
    ask = await plan(1, 3)
    assert [(await ask(5000)).remaining for _ in range(3)] == [2, 1, 0]


async def test_window_is_the_bursts_refill_time(
    plan: Callable[[float, int], Awaitable[Ask]],
) -> None:
    """The answer states the plan's window: its whole burst refilled at its rate (5 at 2/s:
    2.5 s), allowed or limited alike."""
    ask = await plan(2, 5)
    answers = [await ask(1000) for _ in range(6)]
    assert [a.window for a in answers] == [2.5] * 6
    assert answers[-1].reason == "rate_limited"
