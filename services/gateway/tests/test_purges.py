"""Cache purges reaching a real gateway's in-process tier over a real redis-server's pub/sub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import redis

from tollgate_common.contracts.cachekeys import PURGE_CHANNEL, Purge, match_pattern
from tollgate_gateway.cache import LocalTier
from tollgate_gateway.purges import PurgeListener
from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.redis_server import RedisServer

from .conftest import RunningGateway, route_doc

Ups = Callable[..., Upstream]
Gws = Callable[..., RunningGateway]


def x_cache(gw: RunningGateway, path: str) -> str:
    r = httpx.get(f"{gw.url}/api/v1{path}", timeout=10)
    assert r.status_code == 200
    return r.headers["x-cache"]


def first_miss(gw: RunningGateway, path: str, seconds: float = 10.0) -> bool:
    """Whether a GET of ``path`` is a MISS again within ``seconds`` (asked every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if x_cache(gw, path) == "MISS":
            return True
        time.sleep(0.05)
    return False


def cached_gateway(gateway_factory: Gws, upstream_factory: Ups) -> RunningGateway:
    up = upstream_factory()
    gw = gateway_factory(route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 600}))
    for path in ("/eod/AAPL", "/eod/MSFT"):
        assert x_cache(gw, path) == "MISS"
        assert x_cache(gw, path) == "HIT"
    return gw


def test_a_purge_drops_the_local_copies(
    gateway_factory: Gws, upstream_factory: Ups, redis_url: str
) -> None:
    """What auth's purge does (delete in Redis, publish): the gateway's in-process copy of the
    purged path goes too, the other path stays cached."""
    gw = cached_gateway(gateway_factory, upstream_factory)
    wait_subscribed(gw)
    client = redis.Redis.from_url(redis_url)
    p = Purge(route="default/eod", prefix="/eod/AAPL")
    for key in client.scan_iter(match=match_pattern(p.route, p.prefix)):
        client.delete(key)
    client.publish(PURGE_CHANNEL, p.dumps())
    client.close()
    assert first_miss(gw, "/eod/AAPL")
    assert x_cache(gw, "/eod/MSFT") == "HIT"


def test_a_lost_subscription_drops_the_whole_tier(
    gateway_factory: Gws, upstream_factory: Ups, redis_server: RedisServer
) -> None:
    """Purges published while the gateway was cut off cannot reach it: once resubscribed it
    keeps no local copy (here Redis restarted empty, so the next answer is a miss)."""
    gw = cached_gateway(gateway_factory, upstream_factory)
    wait_subscribed(gw)
    redis_server.restart()
    assert first_miss(gw, "/eod/MSFT")


def wait_subscribed(gw: RunningGateway) -> None:
    purges = gw.gateway.purges
    assert purges is not None
    deadline = time.monotonic() + 10
    while not purges.subscribed.is_set():
        assert time.monotonic() < deadline, "the gateway never subscribed to purges"
        time.sleep(0.02)


class _SwallowingPubSub:
    """A subscription whose wait turns a cancel into its own TimeoutError, as a cancel racing
    asyncio.timeout() can come out on Python 3.11 (the shape a hung shutdown had)."""

    async def subscribe(self, _channel: str) -> None:
        return None

    async def get_message(self, timeout: float) -> None:  # noqa: ASYNC109  # redis-py's signature
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            raise TimeoutError() from None

    async def aclose(self) -> None:
        return None


class _Redis:
    def pubsub(self, **_kw: object) -> _SwallowingPubSub:
        return _SwallowingPubSub()


async def test_stop_ends_the_listener_even_when_a_cancel_is_swallowed() -> None:
    """stop() returns although the subscription swallowed the cancel."""
    listener = PurgeListener(_Redis(), LocalTier(10, 1 << 20), wait_seconds=0.05)
    listener.start()
    await asyncio.wait_for(listener.subscribed.wait(), 5)
    await asyncio.wait_for(listener.stop(), 5)
