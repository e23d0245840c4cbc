"""GCRA, the generic cell rate algorithm, in Python (the Lua in authorize.lua is its twin).

Why GCRA and not a sliding window: one number per key (the theoretical arrival time, TAT), O(1)
memory and time, exact at any rate, and bursts bounded by construction; a sliding-window log costs
memory per request and an approximate window counter lets up to twice the rate through at a window
edge. Brandur Leach's "Rate limiting, cells, and GCRA" and redis-cell use the same formulation.

rate  - requests per second sustained
burst - requests allowed at once from an idle start (>= 1)

Times are integer milliseconds so Python and Lua agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    new_tat: int  # store this when allowed
    remaining: int  # requests left in the burst after this one
    reset_ms: int  # until the burst is fully available again
    retry_after_ms: int  # when limited: until one more request is allowed


def gcra(tat: int, now: int, rate: float, burst: int) -> RateDecision:
    interval = max(int(1000 / rate), 1)
    tolerance = interval * burst
    base = max(tat, now)
    new_tat = base + interval
    allow_at = new_tat - tolerance
    if now < allow_at:
        return RateDecision(False, tat, 0, base - now, allow_at - now)
    remaining = (tolerance - (new_tat - now)) // interval
    return RateDecision(True, new_tat, remaining, new_tat - now, 0)
