"""A minimal concurrency limit for the upstream pool's hot path.

asyncio.Semaphore works, but its acquire path builds generators and checks waiter lists on every
call; with no contention (the usual case) this one is a counter compare and an increment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Limiter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # release() hands its slot over: ``used`` is already counted for us
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # we were handed a slot as we were cancelled: pass it on
            else:
                # Still queued, unless a release() between our cancel and now dropped us
                # already (it skips done futures): one scan of the queue either way.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.used -= 1
