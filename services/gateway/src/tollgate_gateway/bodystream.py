"""A response body too large to hold whole, pulled from its upstream connection as the client
takes it (issue 14: bodies were read whole under a 64 MiB cap against a 256 Mi pod limit, so a few
large answers could OOM a gateway).

Envoy's and nginx's shape: a bounded buffer, then flow control. The upstream connection's
protocol feeds bytes in (``feed``, ``end``, ``fail``); the client's writer pulls them out
(``next``) and, once done or gone, ``close``s. While more than ``high_water`` bytes wait here the
upstream transport stops reading (``pause_reading``), so the kernel's socket buffers, not this
process, hold the rest, and TCP slows the upstream down; below half of it reading resumes. One
stream thus holds about ``high_water`` plus one read, whatever the body's size.

The upstream connection is settled as soon as its last byte is parsed (``on_settle(True)``: back
to the pool, even while the client still drains what waits here), or when the stream fails or
the client leaves first (``on_settle(False)``: closed, its state is unknown). ``watch`` gets the
outcome once: ``complete``, ``client_gone`` or ``upstream_failed``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

HIGH_WATER = 256 << 10  # bytes waiting for the client before the upstream stops being read

COMPLETE = "complete"
CLIENT_GONE = "client_gone"
UPSTREAM_FAILED = "upstream_failed"


class BodyStream:
    """One streamed body; one producer (the upstream protocol), one consumer (the client)."""

    def __init__(
        self,
        transport: Any,
        loop: asyncio.AbstractEventLoop,
        length: int | None,
        high_water: int = HIGH_WATER,
    ) -> None:
        self._transport = transport  # None once settled: nothing more is read for this stream
        self.loop = loop
        self.length = length  # the upstream's Content-Length; None: chunked or until close
        self.high_water = high_water
        self.idle_timeout: float | None = None  # no byte within this while waiting: failed
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False  # the last byte arrived
        self._error: Exception | None = None
        self._closed = False  # the consumer is done with it
        self._claimed = False
        self._settled: bool | None = None  # the connection's fate, once known
        self._on_settle: Callable[[bool], None] | None = None
        self._watcher: Callable[[str, Exception | None], None] | None = None
        self._outcome: str | None = None

    # the pool's and the proxy's side
    def bind_settle(self, on_settle: Callable[[bool], None]) -> None:
        """The pool's callback for the connection (True: reusable). Called at once when the
        body already ended or failed before the pool saw the stream."""
        self._on_settle = on_settle
        if self._settled is not None:
            on_settle(self._settled)

    def claim(self) -> bool:
        """True for the one consumer: a coalesced fetch hands its answer to every waiter, and
        only one of them may pull a stream."""
        if self._claimed:
            return False
        self._claimed = True
        return True

    def watch(self, watcher: Callable[[str, Exception | None], None]) -> None:
        """The outcome, once (at once when it is known already)."""
        self._watcher = watcher
        if self._outcome is not None:
            watcher(self._outcome, self._error)

    # the producer's side (the upstream protocol's callbacks)
    def feed(self, data: bytes) -> None:
        if self._closed:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > self.high_water and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._settle(True)
        self._wake()

    def fail(self, exc: Exception) -> None:
        if self._ended or self._error is not None:
            return
        self._error = exc
        self._settle(False)
        self._chunks.clear()
        self._buffered = 0
        if self._closed:  # the client left first: that is the outcome already
            return
        self._wake()

    # the consumer's side
    async def next(self) -> bytes:
        """The next bytes of the body; b"" at its end. Raises what the upstream failed with."""
        while not self._chunks:
            if self._error is not None:
                self._done(UPSTREAM_FAILED)
                raise self._error
            if self._ended:
                self._done(COMPLETE)
                return b""
            self._waiter = self.loop.create_future()
            try:
                if self.idle_timeout is None:
                    await self._waiter
                else:
                    async with asyncio.timeout(self.idle_timeout):
                        await self._waiter
            except TimeoutError:
                self.fail(
                    TimeoutError(f"the upstream sent nothing for {self.idle_timeout:g}s mid-body")
                )
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= self.high_water // 2:
            self._paused = False
            if self._transport is not None:
                self._transport.resume_reading()
        return chunk

    def close(self) -> None:
        """The consumer is done: at the end, or gone (the upstream connection is closed then:
        the rest of its body will never be read)."""
        if self._closed:
            return
        self._closed = True
        if self._outcome is None:
            self._done(CLIENT_GONE)
        self._settle(False)
        self._chunks.clear()
        self._buffered = 0

    @property
    def buffered(self) -> int:
        """Bytes waiting for the client (tests)."""
        return self._buffered

    def _settle(self, reusable: bool) -> None:
        if self._settled is not None:
            return
        self._settled = reusable
        if self._paused and self._transport is not None and reusable:
            self._transport.resume_reading()  # it goes back to the pool: it must read again
        self._paused = False
        self._transport = None
        if self._on_settle is not None:
            self._on_settle(reusable)

    def _done(self, outcome: str) -> None:
        if self._outcome is None:
            self._outcome = outcome
            if self._watcher is not None:
                self._watcher(outcome, self._error)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
