"""The response cache: an in-process tier in front of Redis, with request coalescing.

Only successful GET answers are stored, under a key naming the route and path and a digest of
the canonical (sorted) query without credentials (tollgate_common/contracts/cachekeys.py).
Entries are immutable until they expire, so the in-process tier keeps each entry until its Redis
expiry and stays coherent across gateways without invalidation; a purge (auth's admin API) is the
one exception, and reaches every gateway's tier over pub/sub (purges.py). One Redis round trip
costs about as much CPU as the rest of a request, so a local hit makes none. A Redis error
bypasses the cache for a short back-off: a dead Redis must not add a timeout to every request.

A route with ``cache.staleIfErrorSeconds`` (RFC 5861 §4) keeps its entries that much longer
than their TTL: never served as hits then, only when every upstream fails (``stale``).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any, TypeVar

from redis.exceptions import RedisError

from tollgate_common.contracts.cachekeys import entry_key
from tollgate_common.contracts.routes import CacheSpec
from tollgate_common.redis.client import describe
from tollgate_common.redis.commands import Strings
from tollgate_common.types import Headers
from tollgate_gateway.bodystream import BodyStream
from tollgate_gateway.headers import cacheable_response

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class Cached:
    status: int
    headers: Headers
    body: bytes
    expires_at: float  # wall clock (time.time()), shared by every gateway: fresh until then
    stale_until: float = 0.0  # kept until then to be served if every upstream fails
    stored_at: float = 0.0  # for the Age of a stale answer
    # An answer too large to read whole (bodystream.py): never stored, ``body`` is empty.
    stream: BodyStream | None = None

    @property
    def keep_until(self) -> float:
        return max(self.expires_at, self.stale_until)

    def size(self) -> int:
        return len(self.body) + sum(len(n) + len(v) for n, v in self.headers) + 64


class Served(Enum):
    """Where an answer came from; the value is its ``X-Cache`` header."""

    MISS = b"MISS"  # from an upstream
    HIT = b"HIT"
    STALE = b"STALE"  # an expired entry, because every upstream failed (RFC 5861)


def cache_key(method: str, route: str, path: str, query_parts: list[bytes]) -> bytes:
    """Key for one request: credentials are already out of ``query_parts``; order is canonical."""
    return entry_key(method, route, path, query_parts)


@dataclass(slots=True, frozen=True)
class CacheRule:
    """How one cacheable request is cached: under which key, for how long, and which of its
    answers qualify (``admits``)."""

    key: bytes
    ttl_seconds: float
    max_body_bytes: int
    stale_seconds: float = 0.0

    def admits(self, headers: Headers, body: bytes) -> bool:
        """An answer is stored unless it is over the route's size or said no-store/private."""
        return len(body) <= self.max_body_bytes and cacheable_response(headers)

    def entry(self, status: int, headers: Headers, body: bytes, now: float) -> Cached:
        fresh_until = now + self.ttl_seconds
        return Cached(status, headers, body, fresh_until, fresh_until + self.stale_seconds, now)


def cache_rule(
    method: str, route: str, spec: CacheSpec, path: str, query_parts: list[bytes]
) -> CacheRule | None:
    """The cache rule of a request, None when it is not cacheable: only GETs of a route with a
    TTL are (a HEAD's empty body must not be served to a GET)."""
    if method != "GET" or spec.ttl_seconds <= 0:
        return None
    return CacheRule(
        cache_key(method, route, path, query_parts),
        spec.ttl_seconds,
        spec.max_body_bytes,
        spec.stale_if_error_seconds,
    )


def pack(entry: Cached) -> bytes:
    """Binary layout: expires_at, stale_until, stored_at (f64 each), status (u16), n headers
    (u16), [len name, len value, name, value]..., body. Compact and cheap to parse, unlike JSON
    with base64 bodies."""
    parts = [
        _HEAD.pack(
            entry.expires_at,
            entry.stale_until,
            entry.stored_at,
            entry.status,
            len(entry.headers),
        )
    ]
    for name, value in entry.headers:
        parts.append(struct.pack("!HH", len(name), len(value)))
        parts.append(name)
        parts.append(value)
    parts.append(entry.body)
    return b"".join(parts)


def unpack(data: bytes) -> Cached:
    expires_at, stale_until, stored_at, status, n = _HEAD.unpack_from(data, 0)
    off = _HEAD.size
    headers = []
    for _ in range(n):
        ln, lv = struct.unpack_from("!HH", data, off)
        off += 4
        headers.append((data[off : off + ln], data[off + ln : off + ln + lv]))
        off += ln + lv
    return Cached(status, headers, data[off:], expires_at, stale_until, stored_at)


_HEAD = struct.Struct("!dddHH")


class LocalTier:
    """A bounded LRU of entries, each kept until its own expiry."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[bytes, Cached] = OrderedDict()
        self._bytes = 0

    def get(self, key: bytes, now: float) -> Cached | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            if entry.stale_until <= now:
                self._drop(key)
            return None
        self._data.move_to_end(key)
        return entry

    def get_stale(self, key: bytes, now: float) -> Cached | None:
        """The entry, fresh or expired, while it may still be served stale."""
        entry = self._data.get(key)
        if entry is None or entry.keep_until <= now:
            return None
        return entry

    def put(self, key: bytes, entry: Cached) -> None:
        if self.max_entries <= 0 or entry.size() > self.max_bytes:
            return
        if key in self._data:
            self._drop(key)
        self._data[key] = entry
        self._bytes += entry.size()
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._data)))

    def _drop(self, key: bytes) -> None:
        entry = self._data.pop(key)
        self._bytes -= entry.size()

    def purge(self, start: bytes) -> int:
        """Drop every entry whose key starts with ``start``; how many went."""
        doomed = [k for k in self._data if k.startswith(start)]
        for k in doomed:
            self._drop(k)
        return len(doomed)

    def clear(self) -> None:
        self._data.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)


class ResponseCache:
    def __init__(self, redis: Strings, local: LocalTier, backoff_seconds: float) -> None:
        self.redis = redis
        self.local = local
        self.backoff_seconds = backoff_seconds
        self._redis_down_until = 0.0
        self._writes: set[asyncio.Task[None]] = set()

    def _redis_usable(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: BaseException) -> None:
        if time.monotonic() >= self._redis_down_until:
            log.warning(
                "redis unavailable, cache bypassed for %.1fs: %s",
                self.backoff_seconds,
                describe(exc),
            )
        self._redis_down_until = time.monotonic() + self.backoff_seconds

    async def get(self, key: bytes) -> Cached | None:
        now = time.time()
        entry = self.local.get(key, now)
        if entry is not None or not self._redis_usable():
            return entry
        entry = await self._from_redis(key)
        if entry is None or entry.expires_at <= now:
            return None
        self.local.put(key, entry)
        return entry

    async def stale(self, key: bytes) -> Cached | None:
        """An entry that may be served stale (every upstream failed): local, else Redis."""
        now = time.time()
        entry = self.local.get_stale(key, now)
        if entry is not None or not self._redis_usable():
            return entry
        entry = await self._from_redis(key)
        return entry if entry is not None and entry.keep_until > now else None

    async def _from_redis(self, key: bytes) -> Cached | None:
        """The entry Redis holds under ``key``, fresh or not; None when absent or Redis fails."""
        try:
            data = await self.redis.get(key)
        except (TimeoutError, RedisError, OSError) as exc:
            self._redis_failed(exc)
            return None
        return None if data is None else unpack(data)

    def put(self, key: bytes, entry: Cached) -> None:
        """Store locally now and in Redis off the response path."""
        self.local.put(key, entry)
        if not self._redis_usable():
            return
        ttl_ms = int((entry.keep_until - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        task = asyncio.ensure_future(self._write(key, pack(entry), ttl_ms))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, key: bytes, data: bytes, ttl_ms: int) -> None:
        try:
            await self.redis.set(key, data, px=ttl_ms)
        except (TimeoutError, RedisError, OSError) as exc:
            self._redis_failed(exc)

    async def drain(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


class Coalescer:
    """Concurrent misses on one key share one upstream call.

    The first caller starts ``fetch`` as a task of its own; every caller, the first included,
    awaits it through a shield. A caller whose client went away is cancelled alone: the fetch
    goes on for the others (issue 11: when the first client of a burst hung up, each of the
    other twenty fetched on its own). Only when the last caller has left is the fetch cancelled,
    so its upstream request and connection do not outlive every client.

    ``fetch`` stores its answer (in the in-process tier) before it returns, and the key stays in
    flight until the task is done, so a caller that arrives later finds the answer in the cache
    instead of fetching again: ``fresh`` is asked before a new fetch is started (issue 11: a miss
    just before the leader stored its answer fetched a second time).
    """

    def __init__(self, unclaimed: Callable[[Any], None] | None = None) -> None:
        self._inflight: dict[bytes, _Flight] = {}
        # Given an answer that landed as its last waiter was cancelled: nobody takes it.
        self._unclaimed = unclaimed

    async def run(
        self,
        loop: asyncio.AbstractEventLoop,
        key: bytes,
        fetch: Callable[[], Coroutine[Any, Any, T]],
        fresh: Callable[[], T | None],
    ) -> T:
        flight: _Flight | None = self._inflight.get(key)
        if flight is None:
            answer = fresh()
            if answer is not None:
                return answer
            flight = _Flight(loop.create_task(fetch()))  # loop given: no getpid() per call
            self._inflight[key] = flight
            flight.task.add_done_callback(partial(self._landed, key, flight))
        flight.waiters += 1
        try:
            result: T = await asyncio.shield(flight.task)
            return result
        except asyncio.CancelledError:
            if flight.waiters == 1:  # the last one: nobody to serve
                task = flight.task
                if not task.done():
                    self._landed(key, flight)
                    task.cancel()
                elif self._unclaimed is not None and not task.cancelled() and not task.exception():
                    self._unclaimed(task.result())
            raise
        finally:
            flight.waiters -= 1

    def _landed(self, key: bytes, flight: _Flight, _task: object = None) -> None:
        if self._inflight.get(key) is flight:
            del self._inflight[key]

    def __len__(self) -> int:
        return len(self._inflight)


@dataclass(slots=True)
class _Flight:
    task: asyncio.Task[Any]
    waiters: int = 0
