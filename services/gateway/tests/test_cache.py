"""Cache keys, the entry format, the in-process tier and request coalescing."""

from __future__ import annotations

import asyncio

import pytest

from tollgate_common.contracts.cachekeys import route_part
from tollgate_common.contracts.routes import CacheSpec
from tollgate_gateway.cache import (
    Cached,
    Coalescer,
    LocalTier,
    cache_key,
    cache_rule,
    pack,
    unpack,
)

CACHED = CacheSpec(ttl_seconds=60, max_body_bytes=10)


def test_key_is_canonical_over_query_order() -> None:
    """The same parameters in another order hit the same entry."""
    assert cache_key("GET", "r", "/p", [b"a=1", b"b=2"]) == cache_key(
        "GET", "r", "/p", [b"b=2", b"a=1"]
    )


def test_key_separates_route_path_method_and_query() -> None:
    """Each component changes the key."""
    base = cache_key("GET", "r", "/p", [b"a=1"])
    assert base != cache_key("HEAD", "r", "/p", [b"a=1"])
    assert base != cache_key("GET", "r2", "/p", [b"a=1"])
    assert base != cache_key("GET", "r", "/q", [b"a=1"])
    assert base != cache_key("GET", "r", "/p", [b"a=2"])


def test_only_gets_of_a_route_with_a_ttl_are_cacheable() -> None:
    """HEAD, POST, or a route without a TTL: no cache rule."""
    assert cache_rule("GET", "r", CACHED, "/p", []) is not None
    assert cache_rule("HEAD", "r", CACHED, "/p", []) is None
    assert cache_rule("POST", "r", CACHED, "/p", []) is None
    assert cache_rule("GET", "r", CacheSpec(ttl_seconds=0), "/p", []) is None


def test_rule_keys_the_request_and_keeps_the_ttl() -> None:
    """The rule's key is the request's cache key; an entry lives for the route's TTL."""
    rule = cache_rule("GET", "r", CACHED, "/p", [b"b=2", b"a=1"])
    assert rule is not None
    assert rule.key == cache_key("GET", "r", "/p", [b"a=1", b"b=2"])
    assert rule.entry(200, [], b"x", now=1000.0).expires_at == 1060.0


def test_rule_admits_answers_within_size_that_allow_storing() -> None:
    """Over maxBodyBytes, no-store or private: not stored."""
    rule = cache_rule("GET", "r", CACHED, "/p", [])
    assert rule is not None
    assert rule.admits([], b"x" * 10)
    assert not rule.admits([], b"x" * 11)
    assert not rule.admits([(b"cache-control", b"no-store")], b"x")
    assert not rule.admits([(b"Cache-Control", b"max-age=5, private")], b"x")


def test_pack_round_trip() -> None:
    """An entry survives the binary format."""
    e = Cached(200, [(b"content-type", b"application/json"), (b"x", b"")], b'{"a":1}', 123.5)
    assert unpack(pack(e)) == e
    stale = Cached(200, [], b"x", expires_at=123.5, stale_until=150.25, stored_at=100.0)
    assert unpack(pack(stale)) == stale


def test_rule_keeps_entries_for_stale_if_error() -> None:
    """staleIfErrorSeconds: the entry is fresh for the TTL and kept that much longer."""
    spec = CacheSpec(ttl_seconds=60, stale_if_error_seconds=30)
    rule = cache_rule("GET", "r", spec, "/p", [])
    assert rule is not None
    e = rule.entry(200, [], b"x", now=1000.0)
    assert (e.stored_at, e.expires_at, e.stale_until, e.keep_until) == (1000, 1060, 1090, 1090)


def test_local_tier_keeps_a_stale_entry_for_errors_only() -> None:
    """Past its expiry a stale-if-error entry is no hit, but is there to serve stale until
    stale_until, and gone after."""
    tier = LocalTier(10, 1 << 20)
    tier.put(b"k", Cached(200, [], b"x", expires_at=100.0, stale_until=130.0))
    assert tier.get(b"k", now=100.0) is None
    assert tier.get_stale(b"k", now=129.0) is not None
    assert len(tier) == 1
    assert tier.get_stale(b"k", now=130.0) is None
    assert tier.get(b"k", now=130.0) is None
    assert len(tier) == 0


def test_local_tier_purges_by_key_start() -> None:
    """purge drops the entries whose key starts with the given bytes, and only those."""
    tier = LocalTier(10, 1 << 20)
    keys = [
        cache_key("GET", "ns/eod", "/eod/AAPL", []),
        cache_key("GET", "ns/eod", "/eod/AAPL", [b"x=1"]),
        cache_key("GET", "ns/eod", "/eod/MSFT", []),
        cache_key("GET", "ns/other", "/eod/AAPL", []),
    ]
    for k in keys:
        tier.put(k, Cached(200, [], b"x", 1e12))
    assert tier.purge(route_part("ns/eod", "/eod/AA")) == 2
    assert [tier.get(k, 0) is not None for k in keys] == [False, False, True, True]


def test_local_tier_expires_entries() -> None:
    """An entry is served until its expiry, then gone."""
    tier = LocalTier(10, 1 << 20)
    tier.put(b"k", Cached(200, [], b"x", expires_at=100.0))
    assert tier.get(b"k", now=99.0) is not None
    assert tier.get(b"k", now=100.0) is None
    assert len(tier) == 0


def test_local_tier_evicts_least_recently_used() -> None:
    """Over the entry cap the least recently used goes first."""
    tier = LocalTier(2, 1 << 20)
    for k in (b"a", b"b"):
        tier.put(k, Cached(200, [], b"x", 1e12))
    tier.get(b"a", 0)
    tier.put(b"c", Cached(200, [], b"x", 1e12))
    assert tier.get(b"b", 0) is None
    assert tier.get(b"a", 0) is not None


def test_local_tier_respects_byte_cap() -> None:
    """Bodies beyond the byte cap are not kept."""
    tier = LocalTier(100, 1000)
    tier.put(b"big", Cached(200, [], b"x" * 2000, 1e12))
    assert tier.get(b"big", 0) is None


def nothing() -> None:
    """A ``fresh`` for the coalescer: nothing in the cache."""
    return None


async def test_coalescer_runs_one_fetch_for_concurrent_callers() -> None:
    """Ten concurrent callers of one key share a single fetch."""
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "answer"

    c = Coalescer()
    loop = asyncio.get_running_loop()
    tasks = [asyncio.ensure_future(c.run(loop, b"k", fetch, nothing)) for _ in range(10)]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*tasks) == ["answer"] * 10
    assert calls == 1
    await asyncio.sleep(0)
    assert len(c) == 0


async def test_coalescer_fetch_outlives_a_cancelled_leader() -> None:
    """A leader whose client left does not take the fetch away from its followers."""
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "answer"

    c = Coalescer()
    loop = asyncio.get_running_loop()
    leader = asyncio.ensure_future(c.run(loop, b"k", fetch, nothing))
    await asyncio.sleep(0)
    follower = asyncio.ensure_future(c.run(loop, b"k", fetch, nothing))
    await asyncio.sleep(0.01)
    leader.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    assert await follower == "answer"
    assert calls == 1
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_coalescer_cancels_the_fetch_when_every_caller_left() -> None:
    """With nobody left to answer, the fetch is cancelled and the key is free again."""
    cancelled = asyncio.Event()

    async def fetch() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    c = Coalescer()
    loop = asyncio.get_running_loop()
    callers = [asyncio.ensure_future(c.run(loop, b"k", fetch, nothing)) for _ in range(3)]
    await asyncio.sleep(0.01)
    for t in callers:
        t.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    await asyncio.wait_for(cancelled.wait(), 5)
    assert len(c) == 0


async def test_coalescer_late_caller_reads_the_fresh_answer() -> None:
    """A caller arriving after the fetch landed takes the stored answer instead of fetching."""
    calls = 0
    stored: list[str] = []

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        stored.append("answer")
        return "answer"

    c = Coalescer()
    loop = asyncio.get_running_loop()
    assert await c.run(loop, b"k", fetch, lambda: stored[0] if stored else None) == "answer"
    assert await c.run(loop, b"k", fetch, lambda: stored[0] if stored else None) == "answer"
    assert calls == 1


async def test_coalescer_shares_failures() -> None:
    """A failed fetch fails every waiter with the same error (one upstream call, not N)."""
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ValueError("upstream down")

    c = Coalescer()
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(
        *(c.run(loop, b"k", fetch, nothing) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
    assert calls == 1
