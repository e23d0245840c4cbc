"""The circuit breaker's states."""

from __future__ import annotations

from tollgate_gateway.breaker import Breaker


def test_ejects_after_threshold_and_probes_back() -> None:
    """N consecutive failures eject; after ejectSeconds one probe goes through; success closes."""
    b = Breaker(failure_threshold=3, eject_seconds=10)
    assert not b.failure(0)
    assert not b.failure(0)
    assert b.failure(0)  # third failure ejects
    assert not b.allows(5)
    assert b.allows(10)  # the probe
    assert not b.allows(10)  # only one probe at a time
    b.success()
    assert b.allows(11)
    assert b.allows(11)


def test_failed_probe_ejects_again() -> None:
    """A failing probe re-opens the breaker for another period."""
    b = Breaker(failure_threshold=1, eject_seconds=10)
    b.failure(0)
    assert b.allows(10)
    assert b.failure(10)
    assert not b.allows(15)
    assert b.allows(20)


def test_success_resets_the_count() -> None:
    """Failures must be consecutive to eject."""
    b = Breaker(failure_threshold=2, eject_seconds=10)
    b.failure(0)
    b.success()
    assert not b.failure(0)
    assert b.allows(0)


def test_cancelled_probe_frees_the_slot() -> None:
    """A probe that never finished does not keep the endpoint ejected forever."""
    b = Breaker(failure_threshold=1, eject_seconds=1)
    b.failure(0)
    assert b.allows(2)
    b.release()
    assert b.allows(2)
