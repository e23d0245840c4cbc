"""The Redis commands the services send, as Protocols: what a module needs from its client.

Three levels, each a superset of the one before:

- ``Scripts``: EVALSHA and SCRIPT LOAD (``LuaScript``, the ledger). Both clients offer them.
- ``Strings``: and GET / SET with a PX expiry (the cache tier). Both clients offer them: the
  two per-request paths run on the lean client (resp.py), their tests may pass redis-py's.
- ``Client``: every command the services send through the redis-py pool (client.py): hashes,
  sets, sorted sets, streams, SCAN, pub/sub, pipelines.

mypy checks that redis-py's ``Redis`` is a ``Client`` and ``LeanRedis`` a ``Strings`` (the
assignments at the end of this module). A Protocol lists only the commands some service calls,
with the arguments it passes; a new command is one more line here. Keyword arguments keep
redis-py's names. Replies are ``Any``: the pool is made with ``decode_responses=False``, so they
are bytes, which redis-py's annotations (``bytes | str``) cannot say; each caller parses its own.
Only redis-py has pipelines and pub/sub: ``Pipeline`` and ``Subscription`` are what the services
use of its two.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from redis.commands.core import AsyncScript

Key = bytes | str
Value = bytes | str | int | float
StreamId = bytes | str


@runtime_checkable
class Scripts(Protocol):
    def script_load(self, script: str, /) -> Awaitable[str]: ...

    def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: Value) -> Awaitable[Any]: ...


@runtime_checkable
class Strings(Scripts, Protocol):
    def get(self, name: Key, /) -> Awaitable[Any]: ...

    def set(self, name: Key, value: bytes, /, *, px: int | None = None) -> Awaitable[Any]: ...


class Pipeline(Protocol):
    """Commands queued on a redis-py pipeline, sent in one round trip by ``execute()``. A queued
    command returns the pipeline (redis-py's annotations say otherwise): nothing to await."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: Any, exc_value: Any, traceback: Any, /) -> Any: ...

    def execute(self) -> Awaitable[list[Any]]: ...

    def delete(self, *names: Key) -> object: ...

    def get(self, name: Key, /) -> object: ...

    def hmget(self, name: Key, keys: Key, /, *args: Key) -> object: ...

    def hgetall(self, name: Key, /) -> object: ...

    def hset(self, name: Key, /, *, mapping: Mapping[Any, Any]) -> object: ...

    def hdel(self, name: Key, /, *keys: Key) -> object: ...

    def sadd(self, name: Key, /, *values: Key) -> object: ...

    def xadd(
        self,
        name: Key,
        fields: dict[Any, Any],
        /,
        *,
        maxlen: int | None = None,
        approximate: bool = True,
    ) -> object: ...

    def xack(self, name: Key, groupname: str, /, *ids: StreamId) -> object: ...

    def zrem(self, name: Key, /, *values: Key) -> object: ...


class Subscription(Protocol):
    """A redis-py pub/sub connection: subscribe, then wait for messages."""

    def subscribe(self, *channels: Key) -> Awaitable[Any]: ...

    def get_message(self, *, timeout: float | None = 0.0) -> Awaitable[Any]: ...

    def aclose(self) -> Awaitable[Any]: ...


@runtime_checkable
class Client(Strings, Protocol):
    # keys and strings
    def set(
        self,
        name: Key,
        value: Value,
        /,
        *,
        ex: int | None = None,
        px: int | None = None,
        nx: bool = False,
    ) -> Awaitable[Any]: ...

    def getrange(self, key: Key, start: int, end: int, /) -> Awaitable[Any]: ...

    def exists(self, *names: Key) -> Awaitable[Any]: ...

    def delete(self, *names: Key) -> Awaitable[Any]: ...

    def unlink(self, *names: Key) -> Awaitable[Any]: ...

    def scan(
        self, cursor: int = 0, /, *, match: Key | None = None, count: int | None = None
    ) -> Awaitable[Any]: ...

    def scan_iter(
        self, match: Key | None = None, count: int | None = None
    ) -> AsyncIterator[Any]: ...

    def sscan(
        self, name: Key, cursor: int = 0, /, *, match: Key | None = None, count: int | None = None
    ) -> Awaitable[Any]: ...

    # hashes and sets
    def hget(self, name: Key, key: Key, /) -> Awaitable[Any]: ...

    def hmget(self, name: Key, keys: Key, /, *args: Key) -> Awaitable[Any]: ...

    def hgetall(self, name: Key, /) -> Awaitable[Any]: ...

    def hset(self, name: Key, key: Key, value: Value, /) -> Awaitable[Any]: ...

    def hdel(self, name: Key, /, *keys: Key) -> Awaitable[Any]: ...

    def smembers(self, name: Key, /) -> Awaitable[Any]: ...

    # sorted sets
    def zadd(
        self, name: Key, mapping: Mapping[Any, Any], /, *, nx: bool = False
    ) -> Awaitable[Any]: ...

    def zrem(self, name: Key, /, *values: Key) -> Awaitable[Any]: ...

    def zrangebyscore(
        self,
        name: Key,
        low: float | str,
        high: float | str,
        start: int | None = None,
        num: int | None = None,
        /,
    ) -> Awaitable[Any]: ...

    # streams (the dicts are dict[Any, Any]: redis-py asks for a dict of its own key and value
    # unions, which a caller's dict[str, str] is not, dict being invariant)
    def xadd(
        self,
        name: Key,
        fields: dict[Any, Any],
        /,
        *,
        maxlen: int | None = None,
        approximate: bool = True,
    ) -> Awaitable[Any]: ...

    def xreadgroup(
        self,
        groupname: str,
        consumername: str,
        streams: dict[Any, Any],
        /,
        *,
        count: int | None = None,
        block: int | None = None,
    ) -> Awaitable[Any]: ...

    def xautoclaim(
        self,
        name: Key,
        groupname: str,
        consumername: str,
        /,
        *,
        min_idle_time: int,
        start_id: StreamId = "0-0",
        count: int | None = None,
    ) -> Awaitable[Any]: ...

    def xclaim(
        self,
        name: Key,
        groupname: str,
        consumername: str,
        min_idle_time: int,
        message_ids: list[Any],
        /,
        *,
        justid: bool = False,
    ) -> Awaitable[Any]: ...

    def xack(self, name: Key, groupname: str, /, *ids: StreamId) -> Awaitable[Any]: ...

    def xgroup_create(
        self, name: Key, groupname: str, /, *, id: StreamId = "$", mkstream: bool = False
    ) -> Awaitable[Any]: ...

    def xinfo_groups(self, name: Key, /) -> Awaitable[Any]: ...

    def xinfo_stream(self, name: Key, /) -> Awaitable[Any]: ...

    def xpending(self, name: Key, groupname: str, /) -> Awaitable[Any]: ...

    def xtrim(
        self, name: Key, /, *, minid: StreamId | None = None, approximate: bool = True
    ) -> Awaitable[Any]: ...

    # pub/sub, pipelines, scripts by object, the connection
    def publish(self, channel: Key, message: Value, /) -> Awaitable[Any]: ...

    def pubsub(self, **kwargs: Any) -> Subscription: ...

    def pipeline(self, transaction: bool = True) -> Pipeline: ...

    def register_script(self, script: str, /) -> AsyncScript: ...

    def ping(self) -> Awaitable[Any]: ...

    def aclose(self) -> Awaitable[None]: ...


if TYPE_CHECKING:  # mypy (make lint) checks that the real clients satisfy their Protocols
    import redis.asyncio as aioredis

    from tollgate_common.redis.cluster import LeanCluster
    from tollgate_common.redis.resp import LeanRedis

    def _pool_is_a_client(pool: aioredis.Redis) -> Client:
        return pool

    def _cluster_is_a_client(cluster: aioredis.RedisCluster) -> Client:
        return cluster

    def _lean_cluster_is_strings(lean: LeanCluster) -> Strings:
        return lean

    def _lean_is_strings(lean: LeanRedis) -> Strings:
        return lean
