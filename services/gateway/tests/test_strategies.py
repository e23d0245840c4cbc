"""Strategy planning (pure) and the staggered race."""

from __future__ import annotations

import asyncio

from tollgate_common.contracts.routes import Route
from tollgate_gateway.outcome import Verdict
from tollgate_gateway.strategies import Attempt, may_send, plan, staggered
from tollgate_gateway.upstreams import Upstream, compile_route


def compiled(**spec: object):  # type: ignore[no-untyped-def]
    urls = [f"http://127.0.0.1:{9000 + i}" for i in range(3)]
    body = {"pathPrefix": "/x", "endpoints": [{"url": u} for u in urls], **spec}
    return compile_route(Route.model_validate({"name": "ns/x", "spec": body}))


def test_race_plans_all_at_once() -> None:
    """race: every endpoint, no stagger."""
    cands, delay = plan(compiled(strategy="race"), 0)
    assert len(cands) == 3
    assert delay == 0.0


def test_failover_plans_in_order_with_retries() -> None:
    """failover: endpoints in order, then retries wrap around; next only on failure."""
    c = compiled(strategy="failover", retries=1)
    cands, delay = plan(c, 0)
    assert [u.origin for u in cands] == [u.origin for u in c.upstreams] + [c.upstreams[0].origin]
    assert delay is None


def test_round_robin_rotates_and_hedges_elsewhere() -> None:
    """roundRobin: one endpoint per request, rotating; the hedge goes to another endpoint."""
    c = compiled(strategy="roundRobin", hedgeDelaySeconds=0.05)
    firsts = []
    for _ in range(3):
        cands, delay = plan(c, 0)
        assert delay == 0.05
        assert cands[0] is not cands[1]
        firsts.append(cands[0].origin)
    assert len(set(firsts)) == 3


def test_ejected_endpoints_are_skipped() -> None:
    """A breaker-ejected endpoint is not planned while others are healthy."""
    c = compiled(strategy="race", circuitBreaker={"failureThreshold": 1, "ejectSeconds": 10})
    c.upstreams[0].breaker.failure(0)
    cands, _ = plan(c, 1)
    assert c.upstreams[0] not in cands
    assert len(cands) == 2


def test_planning_claims_no_probe() -> None:
    """A half-open endpoint is planned by every request, and its probe is taken only when an
    attempt is sent: one attempt gets it, a second one at the same time is skipped."""
    c = compiled(strategy="failover", circuitBreaker={"failureThreshold": 1, "ejectSeconds": 10})
    half_open = c.upstreams[1]
    half_open.breaker.failure(0)
    for _ in range(3):
        cands, _ = plan(c, 10)
        assert half_open in cands
    assert not half_open.breaker.is_open(10)
    assert may_send(c, half_open, 10)
    assert half_open.breaker.is_open(10)
    assert not may_send(c, half_open, 10)
    assert half_open not in plan(c, 10)[0]


def test_panic_sends_to_ejected_endpoints() -> None:
    """With every endpoint ejected, attempts go out anyway (the panic case)."""
    c = compiled(strategy="race", circuitBreaker={"failureThreshold": 1, "ejectSeconds": 10})
    for u in c.upstreams:
        u.breaker.failure(0)
    cands, _ = plan(c, 1)
    assert cands == c.upstreams
    assert all(may_send(c, u, 1) for u in cands)


def _send(verdicts: dict[int, tuple[float, Verdict]], started: list[int]):  # type: ignore[no-untyped-def]
    async def send(up: Upstream) -> Attempt:
        port = int(up.origin.rsplit(":", 1)[1]) - 9000
        started.append(port)
        delay, verdict = verdicts[port]
        await asyncio.sleep(delay)
        return Attempt(up, verdict, None)

    return send


async def test_race_returns_the_fastest_good_and_cancels_the_rest() -> None:
    """The first good answer wins; the slower attempts are cancelled."""
    c = compiled(strategy="race")
    started: list[int] = []
    send = _send({0: (1.0, Verdict.GOOD), 1: (0.01, Verdict.GOOD), 2: (1.0, Verdict.GOOD)}, started)
    won, _ = await asyncio.wait_for(staggered(c.upstreams, send, 0.0), 0.5)
    assert won is not None
    assert won.upstream is c.upstreams[1]


async def test_race_skips_fast_failures() -> None:
    """A fast failure does not win over a slower success."""
    c = compiled(strategy="race")
    send = _send({0: (0.0, Verdict.FAIL), 1: (0.05, Verdict.GOOD), 2: (0.0, Verdict.NODATA)}, [])
    won, attempts = await staggered(c.upstreams, send, 0.0)
    assert won is not None
    assert won.upstream is c.upstreams[1]
    assert len(attempts) == 3


async def test_hedge_starts_second_after_delay() -> None:
    """A slow first attempt gets a second one after the hedge delay, which can win."""
    c = compiled()
    started: list[int] = []
    send = _send({0: (1.0, Verdict.GOOD), 1: (0.01, Verdict.GOOD), 2: (0, Verdict.GOOD)}, started)
    won, _ = await asyncio.wait_for(staggered(c.upstreams[:2], send, 0.05), 0.5)
    assert started == [0, 1]
    assert won is not None
    assert won.upstream is c.upstreams[1]


async def test_sequential_stops_at_first_good() -> None:
    """Without stagger, later candidates start only if earlier ones failed."""
    c = compiled()
    started: list[int] = []
    send = _send({0: (0, Verdict.FAIL), 1: (0, Verdict.GOOD), 2: (0, Verdict.GOOD)}, started)
    won, _ = await staggered(c.upstreams, send, None)
    assert started == [0, 1]
    assert won is not None
