"""The upstream pool's concurrency limit (limiter.py): a slot is never lost or counted twice,
whatever order cancellation and release come in. Pure asyncio, no I/O."""

from __future__ import annotations

import asyncio

import pytest

from tollgate_gateway.limiter import Limiter


async def test_a_waiter_cancelled_after_a_release_skipped_it_raises_cancelled() -> None:
    """A waiter's task cancelled, then a release before that task runs again: release() drops the
    cancelled waiter from the queue itself, so the waiter must not try to remove it again (the
    ValueError that raised instead of CancelledError, with a traceback logged per request, when
    1,024 clients left at once under `bench --scale conns`)."""
    limiter = Limiter(1)
    await limiter.acquire()  # the slot is held
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)  # it queues
    waiter.cancel()  # its future is cancelled now, its task resumes later
    limiter.release()  # pops the cancelled future, finds nobody else: the slot is free
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.used == 0
    await asyncio.wait_for(limiter.acquire(), 1)  # and the slot can be had again
    assert limiter.used == 1


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    """Cancelled while queued with no release in between: it leaves the queue, so a later
    acquire with a free slot does not wait behind it."""
    limiter = Limiter(1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release()
    assert limiter.used == 0
    await asyncio.wait_for(limiter.acquire(), 1)


async def test_a_slot_handed_to_a_cancelled_waiter_passes_on() -> None:
    """Handed a slot by release() just as it is cancelled: the waiter passes the slot on to the
    next one in line instead of keeping it."""
    limiter = Limiter(1)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # hands the slot to first
    first.cancel()  # before first runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # second got it
    assert limiter.used == 1
