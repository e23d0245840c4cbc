"""How a request is spread over a route's upstreams.

All three strategies are one mechanism, a staggered race (RFC 8305's "happy eyeballs" shape):
candidates start either all at once (race), one after another when the previous fails (failover,
roundRobin), or the next after a hedge delay (roundRobin with hedgeDelaySeconds). The first answer
that meets the route's successWhen wins and the others are cancelled at once: the original design
awaited every upstream, so the slowest one set the latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tollgate_gateway.balancer import least_inflight, smooth_weighted
from tollgate_gateway.client import UpstreamResponse
from tollgate_gateway.outcome import Verdict
from tollgate_gateway.upstreams import CompiledRoute, Upstream


@dataclass(slots=True)
class Attempt:
    upstream: Upstream
    verdict: Verdict
    response: UpstreamResponse | None
    error: str = ""

    def release(self) -> None:
        """An attempt that will not be served: its streamed body, if any, is closed (and with
        it its upstream connection; a whole body needs nothing)."""
        if self.response is not None and self.response.stream is not None:
            self.response.stream.close()


Send = Callable[[Upstream], Awaitable[Attempt]]


def healthy(ups: list[Upstream], now: float) -> list[Upstream]:
    """Endpoints whose breaker admits a request. When every one is ejected, all of them:
    failing fast on a whole route is worse than trying (Envoy's panic threshold does the same)."""
    ok = [u for u in ups if u.breaker.admits(now)]
    return ok or list(ups)


def may_send(route: CompiledRoute, up: Upstream, now: float) -> bool:
    """At send time, for an endpoint whose breaker is not closed: True when this attempt takes
    its half-open probe, or when the whole route is ejected (the panic case of ``healthy``);
    False when another request holds the probe, and the attempt is skipped."""
    if up.breaker.allows(now):
        return True
    return not any(u.breaker.admits(now) for u in route.upstreams)


def plan(route: CompiledRoute, now: float) -> tuple[list[Upstream], float | None]:
    """Pure: the candidates in order, and the stagger delay (0 = all at once, None = only on
    failure)."""
    spec = route.route.spec
    ups = healthy(route.upstreams, now)
    if spec.strategy == "race":
        return ups, 0.0
    if spec.strategy == "failover":
        n = len(ups) + spec.retries
        return [ups[i % len(ups)] for i in range(n)], None
    picks = []
    pool = list(ups)
    for _ in range(1 + spec.retries + (1 if spec.hedge_delay_seconds else 0)):
        if spec.balancer == "weighted":
            i = smooth_weighted(pool)
        else:
            i = least_inflight(pool, next(route.counter))
        picks.append(pool[i])
        if len(pool) > 1:  # the next pick (retry or hedge) goes elsewhere
            pool = pool[:i] + pool[i + 1 :]
    return picks, spec.hedge_delay_seconds


async def staggered(
    candidates: list[Upstream], send: Send, delay: float | None
) -> tuple[Attempt | None, list[Attempt]]:
    """Run the candidates; return the first good attempt (or None) and every finished attempt."""
    attempts: list[Attempt] = []
    if delay is None or len(candidates) == 1:
        # Strictly one at a time: no tasks needed (the common hot path).
        for up in candidates:
            a = await send(up)
            attempts.append(a)
            if a.verdict is Verdict.GOOD:
                return a, attempts
        return None, attempts
    running: set[asyncio.Task[Attempt]] = set()
    nxt = 0
    try:
        while True:
            start_now = nxt < len(candidates) and (delay == 0.0 or not running)
            if start_now:
                running.add(asyncio.ensure_future(send(candidates[nxt])))
                nxt += 1
                continue
            if not running:
                return None, attempts
            timeout = delay if nxt < len(candidates) else None
            done, _ = await asyncio.wait(
                running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:  # the hedge delay passed with no answer: start the next candidate
                running.add(asyncio.ensure_future(send(candidates[nxt])))
                nxt += 1
                continue
            won: Attempt | None = None
            for task in done:
                running.discard(task)
                a = task.result()
                if won is not None:  # a second good answer in the same wake-up: not served
                    a.release()
                    continue
                attempts.append(a)
                if a.verdict is Verdict.GOOD:
                    won = a
            if won is not None:
                return won, attempts
    finally:
        for task in running:
            if task.done():  # finished after the winner was picked: its answer is not served
                if not task.cancelled() and task.exception() is None:
                    task.result().release()
            else:
                task.cancel()
