"""One Redis pool per process, made the same way everywhere."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """An asyncio Redis client whose pool is opened lazily (nothing connects at import time).

    Short socket timeouts: a Redis that stops answering must degrade the caller (bypass the cache,
    keep the last route table) within a bounded time, never hang a request.
    """
    # A blocking pool: a burst beyond max_connections waits for a free connection (bounded by
    # ``timeout``) instead of failing with "Too many connections" as the plain pool does.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=2.0,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=15,
        decode_responses=False,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
