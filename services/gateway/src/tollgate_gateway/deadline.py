"""``asyncio.timeout()`` for the hot path.

The same contract (the block is cancelled when the time is up and TimeoutError comes out; any
other cancellation passes through), minus its per-call ``get_running_loop()``: on Python 3.11 that
makes a getpid() syscall, and py-spy put asyncio.timeout() at ~10% of an authorized request. The
loop is given once by the caller.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadline:
    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "loop", "seconds")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self.loop = loop
        self.seconds = seconds
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task(self.loop)
        if task is None:
            raise RuntimeError("Deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = self.loop.call_later(self.seconds, self._expire)
        return self

    def _expire(self) -> None:
        self._expired = True
        assert self._task is not None
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._handle is not None
        assert self._task is not None
        self._handle.cancel()
        # Ours, unless someone else cancelled the task too: then theirs goes on (uncancel() is
        # only reached when the deadline fired).
        if (
            self._expired
            and exc_type is asyncio.CancelledError
            and self._task.uncancel() <= self._cancelling
        ):
            raise TimeoutError(f"deadline of {self.seconds:g}s passed") from exc
        return None

    @property
    def expired(self) -> bool:
        return self._expired
