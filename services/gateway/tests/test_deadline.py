"""Deadline behaves as asyncio.timeout() does."""

from __future__ import annotations

import asyncio

import pytest

from tollgate_gateway.deadline import Deadline


async def test_a_block_over_time_raises_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with Deadline(loop, 0.05) as d:
            await asyncio.sleep(5)
    assert d.expired
    assert asyncio.current_task() is not None
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_block_in_time_is_untouched() -> None:
    async with Deadline(asyncio.get_running_loop(), 5) as d:
        await asyncio.sleep(0.01)
    assert not d.expired
    await asyncio.sleep(0.01)  # the timer is gone: nothing cancels us later


async def test_an_outside_cancel_is_not_turned_into_a_timeout() -> None:
    loop = asyncio.get_running_loop()

    async def inner() -> None:
        async with Deadline(loop, 5):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(inner())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
