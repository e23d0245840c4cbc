"""The paired comparison's pure parts (bench/ab.py): the slice order, the pairs per start and
the ratios."""

from __future__ import annotations

import math

from bench.ab import Slice, order, quartiles, ratios, split


def test_the_rows_take_turns_running_first() -> None:
    firsts = [order(p)[0] for p in range(6)]
    assert firsts == [0, 1, 0, 1, 0, 1]
    assert all(sorted(order(p)) == [0, 1] for p in range(6))


def test_a_drift_common_to_both_slices_of_a_pair_cancels() -> None:
    # The machine slows by half over the run; B costs 10 % more than A in every pair.
    pairs = []
    for p in range(9):
        speed = 1.0 - p / 16
        a = Slice(rps=5000 * speed, cpu_us=200 / speed)
        b = Slice(rps=5000 * speed / 1.1, cpu_us=220 / speed)
        pairs.append((a, b))
    r = ratios(pairs)
    assert r.pairs == 9
    assert math.isclose(r.rps[1], 1 / 1.1)
    assert math.isclose(r.cpu[1], 1.1)
    assert math.isclose(r.cpu[0], r.cpu[2])  # no spread left from the drift


def test_a_pair_without_requests_is_left_out() -> None:
    good = (Slice(100, 10), Slice(50, 20))
    r = ratios([good, (Slice(0, 0), Slice(50, 20)), good])
    assert r.pairs == 2
    assert r.rps == (0.5, 0.5, 0.5)


def test_quartiles() -> None:
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    assert quartiles([7.0]) == (7.0, 7.0, 7.0)
    assert all(math.isnan(q) for q in quartiles([]))


def test_the_pairs_are_shared_over_the_starts() -> None:
    assert split(15, 3) == [5, 5, 5]
    assert split(16, 3) == [6, 5, 5]
    assert split(2, 5) == [1, 1]  # never a start without a pair
    assert split(4, 0) == [4]
