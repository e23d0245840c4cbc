"""The loops both stream readers run (streams.run_loop, stop_loops): a failed step is reported,
waited out and followed by a recovery; readiness follows the last outcome; stop ends them."""

from __future__ import annotations

import asyncio

from tollgate_notifier.streams import run_loop, stop_loops


class _Reader:
    healthy = False


async def test_a_failed_step_is_reported_then_recovered_and_run_again() -> None:
    """Two failures then successes: each failure reported by the step's name and followed by
    ``recover``; the reader is unhealthy after a failure and healthy after a success."""
    reader = _Reader()
    stopping = asyncio.Event()
    outcomes = [RuntimeError("first"), RuntimeError("second")]
    seen: list[str] = []
    health: list[bool] = []

    async def read_new() -> None:
        health.append(reader.healthy)
        if outcomes:
            raise outcomes.pop(0)
        if len(health) >= 4:
            stopping.set()

    async def recover() -> None:
        seen.append("recover")

    def report(step: str, exc: Exception) -> None:
        seen.append(f"{step}: {exc}")

    await asyncio.wait_for(run_loop(reader, read_new, stopping, report, recover), 30)
    assert seen == ["read_new: first", "recover", "read_new: second", "recover"]
    assert health == [False, False, False, True]  # as each step began
    assert reader.healthy is True


async def test_a_failing_recovery_does_not_end_the_loop() -> None:
    """recover raising (Redis still down) leaves the loop running: the next step runs."""
    reader = _Reader()
    stopping = asyncio.Event()
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        if steps == 1:
            raise ConnectionError("redis down")
        stopping.set()

    async def recover() -> None:
        raise ConnectionError("still down")

    await asyncio.wait_for(run_loop(reader, step, stopping, lambda _s, _e: None, recover), 30)
    assert steps == 2
    assert reader.healthy is True


async def test_stop_ends_loops_that_are_backing_off() -> None:
    """stop_loops returns although every step fails: the back-off wait ends on the stop."""
    reader = _Reader()
    stopping = asyncio.Event()
    failed = asyncio.Event()

    async def step() -> None:
        failed.set()
        raise RuntimeError("always")

    async def recover() -> None:
        return None

    tasks = [
        asyncio.ensure_future(run_loop(reader, step, stopping, lambda _s, _e: None, recover))
        for _ in range(2)
    ]
    await asyncio.wait_for(failed.wait(), 30)
    await asyncio.wait_for(stop_loops(stopping, tasks, grace=30), 30)
    assert all(t.done() and not t.cancelled() for t in tasks)
    assert reader.healthy is False
