"""One Redis pool per process, made the same way everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, NoScriptError, RedisError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from tollgate_common.redis.cluster import LeanCluster
from tollgate_common.redis.commands import Scripts
from tollgate_common.redis.resp import LeanRedis
from tollgate_common.redis.url import RedisTarget, parse_redis_url

PROBE_SECONDS = 0.5
"""How long a readiness probe waits for Redis: inside the kubelet's default 1 s probe timeout."""


class RedisCluster(aioredis.RedisCluster):
    """redis-py's Redis Cluster client that does not send a command again after a timeout.

    redis-py 8.1 retries a command on ConnectionError, TimeoutError, ClusterDownError and
    SlotNotCoveredError (``ERRORS_ALLOW_RETRY``, whatever ``retry`` says); a timed-out EVALSHA
    may have been applied, and a second one would charge twice. MOVED, ASK and TRYAGAIN are
    followed as redis-py does (the command did not run)."""

    ERRORS_ALLOW_RETRY = (  # type: ignore[assignment]  # redis-py types it as its own 4-tuple
        RedisConnectionError,
        ClusterDownError,
        SlotNotCoveredError,
    )

    async def aclose(self) -> None:
        """Close every connection, also after a ConnectionError or timeout: redis-py 8.1 marks
        the client for re-initialization then, and its aclose() closes nothing while so marked
        (the sockets leak)."""
        self._initialize = False
        await super().aclose()

    def pubsub(
        self,
        node: ClusterNode | None = None,
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> ClusterPubSub:
        return ClusterPubSub(self, node=node, host=host, port=port, **kwargs)


class ClusterPubSub(aioredis.cluster.ClusterPubSub):
    """redis-py's cluster pub/sub that learns the slot map before its first SUBSCRIBE.

    redis-py 8.1 picks the subscription's node from the slot map without loading it first: on
    a client that has sent no command yet (a gateway's purge listener and table follower at
    start-up) SUBSCRIBE raised KeyError, which no listener expected, and the gateway never
    heard a purge or a new route table again."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self.connection is None and self.connection_pool is None:
            await self.cluster.initialize()
        return await super().execute_command(*args, **kwargs)


AnyRedis = aioredis.Redis | aioredis.RedisCluster
"""What ``create_redis`` returns: one server's pool, or redis-py's Redis Cluster client."""


def create_redis(url: str, *, max_connections: int = 64) -> AnyRedis:
    """An asyncio Redis client whose pool is opened lazily (nothing connects at import time).

    Short socket timeouts: a Redis that stops answering must degrade the caller (bypass the cache,
    keep the last route table) within a bounded time, never hang a request.

    One retry, at once, on a ConnectionError: a pooled connection that Redis dropped (a restart, a
    failover, an idle timeout) fails its next command, and that command then goes on a fresh
    connection instead of failing its request. Not on a timeout: a Redis that stopped answering
    would double the wait, and a write it did apply would be applied twice.

    A cluster URL (``redis+cluster://``, url.py) gives redis-py's RedisCluster with the same
    timeouts, AUTH and TLS (``create_cluster``).
    """
    target = parse_redis_url(url)
    if target.cluster:
        return create_cluster(target, max_connections=max_connections)
    # A blocking pool: a burst beyond max_connections waits for a free connection (bounded by
    # ``timeout``) instead of failing with "Too many connections" as the plain pool does. Not
    # from_url(): the URL means what url.py says, for this pool and the lean client alike
    # (redis-py would take ?ssl_cert_reqs=none and skip the hostname check on its own).
    pool = aioredis.BlockingConnectionPool(
        **target.redis_py_kwargs(),
        max_connections=max_connections,
        timeout=2.0,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=15,
        decode_responses=False,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def create_cluster(target: RedisTarget, *, max_connections: int = 64) -> aioredis.RedisCluster:
    """redis-py's Redis Cluster client on a seed node; it learns the slot map on its first
    command (nothing connects here) and follows MOVED and ASK itself.

    What differs from the one-server pool (redis-py 8.1): ``max_connections`` is per node and
    not blocking (a burst beyond it fails with MaxConnectionsError instead of waiting); a
    pipeline's commands are split by slot (``transaction=True`` needs them all on one slot);
    SCAN goes to every primary and answers a cursor per node (``scan_iter`` hides that);
    PUBLISH reaches every node of a cluster, so a subscriber may listen on any one node (its
    ``pubsub()`` is redis-py's ClusterPubSub, on the node of the first channel's slot).
    """
    return RedisCluster(
        **target.redis_py_cluster_kwargs(),
        max_connections=max_connections,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=15,
        decode_responses=False,
        # one retry, as the pool above (RedisCluster above: never after a timeout)
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )


Lean = LeanRedis | LeanCluster
"""The lean client of the hot paths: of one server, or of a Redis Cluster."""


def create_lean(url: str) -> Lean:
    """The lean client (resp.py) for a URL: ``LeanCluster`` (cluster.py) for a cluster URL."""
    target = parse_redis_url(url)
    return LeanCluster(target) if target.cluster else LeanRedis(target)


def describe(exc: BaseException) -> str:
    """An error for a log line: its type and message. Not repr(): redis-py 8's repr of its errors
    drops the message ("auth:AuthenticationError"), and the message is what says which server
    refused which user."""
    return f"{type(exc).__name__}: {exc}"


async def answers(ping: Awaitable[Any]) -> bool:
    """Whether a PING (``redis.ping()`` of redis-py, ``lean.execute("PING")`` of the lean client)
    is answered within PROBE_SECONDS. Readiness probes ask through the clients that serve requests,
    over the connections those use, so a dropped connection is replaced by the probe."""
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            await ping
    except (RedisError, OSError, TimeoutError):
        return False
    return True


class LuaScript:
    """A Lua script run with EVALSHA, loaded again when Redis forgot it (a restart, SCRIPT
    FLUSH). Works with redis-py and with the lean client (tollgate_common.redis.resp)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha: str | None = None

    async def __call__(self, redis: Scripts, keys: list[str], args: list[Any]) -> Any:
        if self.sha is None:
            self.sha = await redis.script_load(self.source)
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = await redis.script_load(self.source)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
