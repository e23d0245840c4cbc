"""Cache purge (issue 13): ``tollgate cache purge`` against real auth processes removes the
entries from a real redis-server and from both real gateway processes' in-process tiers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tollgate_auth.cli import run
from tollgate_common.contracts.cachekeys import match_pattern
from tollgate_testkit.provider import Provider
from tollgate_testkit.services import ADMIN_TOKEN

from .conftest import Stack, open_stack


@pytest.fixture(scope="module")
def purge_stack(
    tmp_path_factory: pytest.TempPathFactory, fixture_provider: Provider
) -> Iterator[Stack]:
    with open_stack(tmp_path_factory.mktemp("purge"), "http", provider=fixture_provider) as s:
        yield s


def get(stack: Stack, gw: int, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{stack.gateways[gw].url}/api/v1{path}", params={"api_key": key}, timeout=10)


def entries(stack: Stack, path: str) -> int:
    client = redis.Redis.from_url(stack.redis.url)
    try:
        return len(list(client.scan_iter(match=match_pattern("default/eod", path))))
    finally:
        client.close()


def gone_from(stack: Stack, gw: int, path: str, key: str, seconds: float = 10) -> float:
    """Seconds until ``path`` is no longer answered from gateway ``gw``'s cache (the upstream
    fails, so a 200 can only be a cached answer); fails after ``seconds``."""
    started = time.monotonic()
    while get(stack, gw, path, key).status_code == 200:
        assert time.monotonic() - started < seconds, f"gateway {gw} still serves {path}"
        time.sleep(0.02)
    return time.monotonic() - started


def test_cli_purge_reaches_redis_and_every_gateway(
    purge_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both gateways hold /eod/AAPL and /eod/MSFT in their tiers; the upstream fails; a purge
    of /eod/AAPL empties it from Redis and from both tiers, and /eod/MSFT is still served."""
    stack = purge_stack
    _, key = stack.new_key(100)
    for path in ("/eod/AAPL", "/eod/MSFT"):
        assert get(stack, 0, path, key).headers["x-cache"] == "MISS"
        assert get(stack, 1, path, key).headers["x-cache"] == "HIT"  # from Redis, now local
    stack.upstream.set("error500")
    base = ["--url", stack.auths[0].url, "--token", ADMIN_TOKEN, "--json"]
    assert run([*base, "cache", "purge", "default/eod", "/eod/AAPL"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"status": True, "route": "default/eod", "prefix": "/eod/AAPL", "deleted": 1}
    assert entries(stack, "/eod/AAPL") == 0
    assert entries(stack, "/eod/MSFT") == 1
    for gw in (0, 1):
        gone_from(stack, gw, "/eod/AAPL", key)
        r = get(stack, gw, "/eod/MSFT", key)
        assert (r.status_code, r.headers["x-cache"]) == (200, "HIT")
    stack.upstream.set("ok")


def test_cli_purge_of_a_whole_route(purge_stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a prefix every entry of the route goes."""
    stack = purge_stack
    _, key = stack.new_key(100)
    for path in ("/eod/A", "/eod/B"):
        assert get(stack, 0, path, key).status_code == 200
    base = ["--url", stack.auths[1].url, "--token", ADMIN_TOKEN, "--json"]
    until_stored = time.monotonic() + 5
    while entries(stack, "/eod/B") < 1:  # the gateway writes to Redis off the response path
        assert time.monotonic() < until_stored
        time.sleep(0.02)
    there = entries(stack, "")
    assert there >= 2
    assert run([*base, "cache", "purge", "default/eod"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == there
    assert entries(stack, "") == 0


def test_cli_purge_refuses_a_bad_route(
    purge_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A route that is not namespace/name: the API's 422 message, exit status 1."""
    base = ["--url", purge_stack.auths[0].url, "--token", ADMIN_TOKEN]
    assert run([*base, "cache", "purge", "eod"]) == 1
    assert "422" in capsys.readouterr().err
