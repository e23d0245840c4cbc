"""Choosing one endpoint for roundRobin: least in-flight, or smooth weighted round robin (pure).

Smooth weighted round robin is nginx's algorithm (ngx_http_upstream_round_robin.c): every pick adds
each weight to its current score, picks the highest, subtracts the total from it; it spreads picks
evenly instead of in bursts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Candidate(Protocol):
    inflight: int
    weight: int
    score: int


def least_inflight(candidates: Sequence[Candidate], start: int) -> int:
    """Index of the candidate with the fewest requests in flight; ties go round robin from
    ``start`` so an idle pool still spreads load."""
    n = len(candidates)
    best, best_load = start % n, None
    for i in range(n):
        j = (start + i) % n
        load = candidates[j].inflight
        if best_load is None or load < best_load:
            best, best_load = j, load
    return best


def smooth_weighted(candidates: Sequence[Candidate]) -> int:
    total = 0
    best = 0
    for i, c in enumerate(candidates):
        c.score += c.weight
        total += c.weight
        if c.score > candidates[best].score:
            best = i
    candidates[best].score -= total
    return best
