"""Request coalescing through the whole stack: one upstream call per cold key, whoever hangs up."""

from __future__ import annotations

import asyncio
import http.client
import time
from collections.abc import Callable

import httpx

from .conftest import Stack


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def inflight(gateway_url: str) -> float:
    """The gateway's tollgate_gateway_inflight gauge, read from its /metrics."""
    for line in httpx.get(f"{gateway_url}/metrics", timeout=5).text.splitlines():
        if line.startswith("tollgate_gateway_inflight "):
            return float(line.split()[1])
    raise AssertionError("no tollgate_gateway_inflight in /metrics")


def test_a_burst_makes_one_upstream_call_per_key(stack: Stack) -> None:
    """Bursts of identical requests over many cold keys reach the upstream once per key, also
    for the requests that missed just as the first answer was being stored."""
    _, key = stack.new_key(10_000)
    gw = stack.gateways[0].url
    rounds, keys, copies = 2, 40, 10
    before = stack.upstream.requests

    async def burst(n: int) -> list[int]:
        limits = httpx.Limits(max_connections=keys * copies)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return [
                r.status_code
                for r in await asyncio.gather(
                    *(
                        client.get(f"{gw}/api/v1/eod/B{n}X{i // copies}", params={"api_key": key})
                        for i in range(keys * copies)
                    )
                )
            ]

    for n in range(rounds):
        assert asyncio.run(burst(n)) == [200] * (keys * copies)
    assert stack.upstream.requests - before == rounds * keys


def test_a_leader_that_hangs_up_is_refunded_and_its_followers_answered(stack: Stack) -> None:
    """The first of 21 identical requests leaves: its credit comes back, the other 20 are
    answered from the one upstream call it started."""
    leader_id, leader_key = stack.new_key(10)
    follower_id, follower_key = stack.new_key(100)
    gw = stack.gateways[1]
    stack.upstream.set("slow", delay=3.0)
    try:
        before = stack.upstream.requests
        leader = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        leader.request("GET", f"/api/v1/eod/HANGUP?api_key={leader_key}")
        wait_for(lambda: stack.upstream.requests - before == 1, "the leader's upstream call")
        followers = [
            http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30) for _ in range(20)
        ]
        for f in followers:
            f.request("GET", f"/api/v1/eod/HANGUP?api_key={follower_key}")
        wait_for(lambda: inflight(gw.url) == 21, "the followers to join")
        leader.close()
        try:
            statuses = [f.getresponse().status for f in followers]
        finally:
            for f in followers:
                f.close()
    finally:
        stack.upstream.set("ok")
    assert statuses == [200] * 20
    assert stack.upstream.requests - before == 1
    wait_for(lambda: stack.credits(leader_id) == 10, "the leader's refund")
    assert stack.credits(follower_id) == 80
