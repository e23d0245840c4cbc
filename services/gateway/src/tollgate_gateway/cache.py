"""The response cache: an in-process tier in front of Redis, with request coalescing.

Only successful GET answers are stored, under a key built from method, route, path and the
canonical (sorted) query without credentials. Entries are immutable until they expire, so the
in-process tier keeps each entry until its Redis expiry and stays coherent across gateways
without invalidation. One Redis round trip costs about as much CPU as the rest of a request, so a
local hit makes none. A Redis error bypasses the cache for a short back-off: a dead Redis must
not add a timeout to every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)
KEY_PREFIX = b"tollgate:cache:"


@dataclass(slots=True, frozen=True)
class Cached:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    expires_at: float  # wall clock (time.time()), shared by every gateway

    def size(self) -> int:
        return len(self.body) + sum(len(n) + len(v) for n, v in self.headers) + 64


def cache_key(method: str, route: str, path: str, query_parts: list[bytes]) -> bytes:
    """Key for one request: credentials are already out of ``query_parts``; order is canonical."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{method}\n{route}\n{path}\n".encode())
    h.update(b"&".join(sorted(query_parts)))
    return KEY_PREFIX + h.hexdigest().encode()


def pack(entry: Cached) -> bytes:
    """Binary layout: expires_at (f64), status (u16), n headers (u16), [len name, len value,
    name, value]..., body. Compact and cheap to parse, unlike JSON with base64 bodies."""
    parts = [struct.pack("!dHH", entry.expires_at, entry.status, len(entry.headers))]
    for name, value in entry.headers:
        parts.append(struct.pack("!HH", len(name), len(value)))
        parts.append(name)
        parts.append(value)
    parts.append(entry.body)
    return b"".join(parts)


def unpack(data: bytes) -> Cached:
    expires_at, status, n = struct.unpack_from("!dHH", data, 0)
    off = 12
    headers = []
    for _ in range(n):
        ln, lv = struct.unpack_from("!HH", data, off)
        off += 4
        headers.append((data[off : off + ln], data[off + ln : off + ln + lv]))
        off += ln + lv
    return Cached(status, headers, data[off:], expires_at)


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
            self._drop(key)
            return None
        self._data.move_to_end(key)
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

    def __len__(self) -> int:
        return len(self._data)


class ResponseCache:
    def __init__(self, redis: Any, local: LocalTier, backoff_seconds: float) -> None:
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
                "redis unavailable, cache bypassed for %.1fs: %r", self.backoff_seconds, exc
            )
        self._redis_down_until = time.monotonic() + self.backoff_seconds

    async def get(self, key: bytes) -> Cached | None:
        now = time.time()
        entry = self.local.get(key, now)
        if entry is not None or not self._redis_usable():
            return entry
        try:
            data = await self.redis.get(key)
        except (TimeoutError, RedisError, OSError) as exc:
            self._redis_failed(exc)
            return None
        if data is None:
            return None
        entry = unpack(data)
        if entry.expires_at <= now:
            return None
        self.local.put(key, entry)
        return entry

    def put(self, key: bytes, entry: Cached) -> None:
        """Store locally now and in Redis off the response path."""
        self.local.put(key, entry)
        if not self._redis_usable():
            return
        ttl_ms = int((entry.expires_at - time.time()) * 1000)
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
    """Concurrent misses on one key share one upstream call: the first caller (the leader) runs
    ``fetch``; the others await its result. If the leader is cancelled (its client went away),
    the followers are woken with that failure and each fetches on its own."""

    def __init__(self) -> None:
        self._inflight: dict[bytes, asyncio.Future[Any]] = {}

    async def run(
        self, loop: asyncio.AbstractEventLoop, key: bytes, fetch: Callable[[], Awaitable[Any]]
    ) -> Any:
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except _LeaderGone:
                return await fetch()
        fut: asyncio.Future[Any] = loop.create_future()  # loop given: no getpid() per call
        self._inflight[key] = fut
        try:
            result = await fetch()
        except asyncio.CancelledError:
            fut.set_exception(_LeaderGone())
            fut.exception()  # mark retrieved: followers may all be gone too
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            del self._inflight[key]

    def __len__(self) -> int:
        return len(self._inflight)


class _LeaderGone(Exception):
    pass
