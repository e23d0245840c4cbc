"""GCRA arithmetic (the Lua script's twin)."""

from __future__ import annotations

from tollgate_auth.ratelimit import gcra


def run(times: list[int], rate: float, burst: int) -> list[bool]:
    tat, out = 0, []
    for now in times:
        d = gcra(tat, now, rate, burst)
        if d.allowed:
            tat = d.new_tat
        out.append(d.allowed)
    return out


def test_burst_then_limited() -> None:
    """From idle, exactly `burst` requests pass at once, then the limit bites."""
    assert run([1000] * 6, rate=1, burst=4) == [True] * 4 + [False] * 2


def test_refills_at_the_rate() -> None:
    """After one interval, one more request passes."""
    assert run([1000, 1000, 1999, 2000], rate=1, burst=2) == [True, True, False, True]


def test_retry_after_is_the_wait_for_one_more() -> None:
    """A limited answer says how long until one request is allowed."""
    d1 = gcra(0, 10_000, 2, 1)
    d2 = gcra(d1.new_tat, 10_000, 2, 1)
    assert not d2.allowed
    assert d2.retry_after_ms == 500


def test_remaining_counts_down() -> None:
    """remaining is the rest of the burst."""
    tat, rem = 0, []
    for _ in range(3):
        d = gcra(tat, 5000, 1, 3)
        tat = d.new_tat
        rem.append(d.remaining)
    assert rem == [2, 1, 0]
