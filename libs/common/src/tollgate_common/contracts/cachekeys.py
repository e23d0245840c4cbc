"""The response cache's layout in Redis, shared by the gateways (which read and write entries)
and auth's admin API (which purges them, issue 13).

An entry's key names its route and path in the clear, then a digest of what else tells requests
apart (method, canonical query)::

    tollgate:cache:<route>|<path>|<digest>

so the entries of one route, or of the paths under a prefix, are one ``SCAN MATCH`` pattern. A
route name (``namespace/name``) has no ``|``, so the route part is unambiguous whatever the path
holds. A purge deletes what the pattern matches in Redis and then publishes itself on
``PURGE_CHANNEL``, where every gateway drops the same entries from its in-process tier.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from tollgate_common.redis.commands import Client

KEY_PREFIX = b"tollgate:cache:"
PURGE_CHANNEL = "tollgate:cache:purged"
SCAN_COUNT = 500  # keys a SCAN step looks at: one step stays short, never a KEYS
MAX_ROUTE_CHARS = 253 + 1 + 253  # namespace/name, each a DNS subdomain at most
MAX_PREFIX_CHARS = 4096  # a bound on the input; no request path is longer (MAX_PATH_CHARS)
_GLOB_SPECIAL = frozenset(b"*?[]\\")


def route_part(route: str, path_prefix: str = "") -> bytes:
    """The start of every key of ``route`` whose path starts with ``path_prefix``."""
    return KEY_PREFIX + route.encode() + b"|" + path_prefix.encode("latin-1")


def entry_key(method: str, route: str, path: str, query_parts: list[bytes]) -> bytes:
    """One request's key: ``query_parts`` are without credentials; their order is canonical."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{method}\n".encode())
    h.update(b"&".join(sorted(query_parts)))
    return route_part(route, path) + b"|" + h.hexdigest().encode()


def match_pattern(route: str, path_prefix: str) -> bytes:
    """The SCAN MATCH pattern of ``route_part``: glob characters in a path match themselves."""
    start = route_part(route, path_prefix)
    escaped = b"".join(b"\\" + bytes((c,)) if c in _GLOB_SPECIAL else bytes((c,)) for c in start)
    return escaped + b"*"


class Purge(BaseModel):
    """One purge: the entries of ``route`` whose path starts with ``prefix`` ("" for all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: str = Field(
        max_length=MAX_ROUTE_CHARS,
        pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$",
        description="namespace/name of the ApiBackend",
    )
    prefix: str = Field(
        "",
        max_length=MAX_PREFIX_CHARS,
        pattern=r"^(/[!-~]*)?$",
        description="a path under /api/v1 (e.g. /eod/AAPL): entries whose path starts with it",
    )

    @property
    def start(self) -> bytes:
        return route_part(self.route, self.prefix)

    def dumps(self) -> bytes:
        return orjson.dumps(self.model_dump())

    @classmethod
    def loads(cls, data: bytes | str) -> Purge:
        return cls.model_validate_json(data)


async def purge(redis: Client, p: Purge) -> int:
    """Delete the entries ``p`` names from Redis (SCAN in bounded steps, each step's keys
    deleted in one pipeline), then tell every gateway. Returns how many keys were deleted.

    ``scan_iter``, not a loop over ``scan``'s cursor: on a Redis Cluster redis-py's SCAN asks
    every primary and answers a cursor per node; its ``scan_iter`` walks them all. One DEL per key,
    pipelined: the entries of a step hash to many slots (issue 13), where one command over them
    all fails with CROSSSLOT on a client that does not split it by slot."""
    deleted = 0
    batch: list[Any] = []
    async for key in redis.scan_iter(match=match_pattern(p.route, p.prefix), count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= SCAN_COUNT:
            deleted += await _delete(redis, batch)
            batch = []
    if batch:
        deleted += await _delete(redis, batch)
    await redis.publish(PURGE_CHANNEL, p.dumps())
    return deleted


async def _delete(redis: Client, keys: list[Any]) -> int:
    # DEL, not UNLINK: redis-py's cluster pipeline runs its unlink at once, outside the pipeline
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.delete(key)
        return sum(int(n) for n in await pipe.execute())
