"""The response cache's key layout and purges (pure), and a purge against a real redis-server."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from tollgate_common.contracts.cachekeys import (
    PURGE_CHANNEL,
    Purge,
    entry_key,
    match_pattern,
    purge,
    route_part,
)


def test_a_key_starts_with_its_route_and_path() -> None:
    """Route and path are in the clear; method and query only in the digest."""
    key = entry_key("GET", "ns/eod", "/eod/AAPL", [b"b=2", b"a=1"])
    assert key.startswith(route_part("ns/eod", "/eod/AAPL") + b"|")
    assert key == entry_key("GET", "ns/eod", "/eod/AAPL", [b"a=1", b"b=2"])
    assert key != entry_key("HEAD", "ns/eod", "/eod/AAPL", [b"a=1", b"b=2"])


async def test_the_pattern_treats_glob_characters_in_a_path_as_themselves(
    redis_url: str,
) -> None:
    """In Redis's SCAN MATCH, a prefix with * or [ matches only paths that start with it."""
    r = aioredis.Redis.from_url(redis_url)
    try:
        literal = entry_key("GET", "ns/eod", "/eod/a*[b]/x", [])
        for k in (literal, entry_key("GET", "ns/eod", "/eod/axb", [])):  # many slots: one each
            await r.set(k, b"v")
        found = [k async for k in r.scan_iter(match=match_pattern("ns/eod", "/eod/a*[b]"))]
        assert found == [literal]
    finally:
        await r.aclose()


@pytest.mark.parametrize(
    "fields",
    [
        {"route": ""},
        {"route": "eod"},  # not namespace/name
        {"route": "ns/eod|x"},
        {"route": "ns/eod", "prefix": "eod"},  # not a path
        {"route": "ns/eod", "prefix": "/a b"},
        {"route": "ns/eod", "prefix": "/" + "a" * 5000},
        {"route": "ns/eod", "extra": "1"},
    ],
)
def test_a_purge_refuses_what_is_not_a_route_or_path(fields: dict[str, str]) -> None:
    """Route names, prefixes and unknown fields are validated and bounded."""
    with pytest.raises(ValidationError):
        Purge.model_validate(fields)


def test_a_purge_round_trips_its_message() -> None:
    """What auth publishes is what a gateway reads."""
    p = Purge(route="ns/eod", prefix="/eod/A")
    assert Purge.loads(p.dumps()) == p
    assert p.start == route_part("ns/eod", "/eod/A")


async def test_purge_deletes_the_matching_keys_and_publishes(redis_url: str) -> None:
    """Over more keys than one SCAN step: every match goes, nothing else, and the purge is
    announced on the channel."""
    r = aioredis.Redis.from_url(redis_url)
    try:
        keep = [entry_key("GET", "ns/eod", "/eod/MSFT", []), entry_key("GET", "ns/x", "/eod/A", [])]
        doomed = [entry_key("GET", "ns/eod", f"/eod/A{i}", []) for i in range(1200)]
        for k in [*keep, *doomed]:  # the entries hash to many slots: one SET each
            await r.set(k, b"v")
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(PURGE_CHANNEL)
        p = Purge(route="ns/eod", prefix="/eod/A")
        assert await purge(r, p) == 1200
        assert sum([await r.exists(k) for k in doomed]) == 0
        assert sum([await r.exists(k) for k in keep]) == 2
        heard = None
        for _ in range(10):  # the first call may only consume the subscribe confirmation
            heard = await pubsub.get_message(timeout=1)
            if heard is not None:
                break
        assert heard is not None
        assert Purge.loads(heard["data"]) == p
        await pubsub.aclose()
    finally:
        await r.aclose()
