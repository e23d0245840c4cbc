"""Endpoint choice for roundRobin."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tollgate_gateway.balancer import least_inflight, smooth_weighted


@dataclass
class C:
    inflight: int = 0
    weight: int = 1
    score: int = 0


def test_least_inflight_prefers_idle() -> None:
    """The endpoint with the fewest requests in flight is chosen."""
    assert least_inflight([C(3), C(1), C(2)], start=0) == 1


def test_least_inflight_ties_rotate() -> None:
    """Equal load rotates with the start index, so idle pools still spread."""
    cs = [C(), C(), C()]
    assert [least_inflight(cs, i) for i in range(3)] == [0, 1, 2]


def test_smooth_weighted_follows_weights_evenly() -> None:
    """Weights 5:1:1 give 5:1:1 picks, never five in a row for the heavy one's neighbours."""
    cs = [C(weight=5), C(weight=1), C(weight=1)]
    picks = [smooth_weighted(cs) for _ in range(70)]
    assert Counter(picks) == {0: 50, 1: 10, 2: 10}
    assert picks[:7].count(0) == 5
