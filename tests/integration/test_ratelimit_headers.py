"""The standard rate-limit headers through the whole stack (both auth modes): the IETF
RateLimit-Policy and RateLimit fields next to X-RateLimit-*, in one stated window."""

from __future__ import annotations

import httpx

from .conftest import Stack


def test_headers_count_down_one_window(stack: Stack) -> None:
    """A 2 req/s plan with a burst of 5: every answer states 5 per 3 s (the burst's refill time,
    rounded up), RateLimit's r is X-RateLimit-Remaining, a fresh key starts at 4 left, and a
    429 (if the requests outrun the refill) says r=0 and Retry-After. No timing is asserted."""
    with stack.admin() as c:
        r = c.put("/v1/admin/plans/std", json={"name": "std", "rate": 2, "burst": 5})
        r.raise_for_status()
    _, key = stack.new_key(100, plan="std")
    gw = stack.gateways[0].url
    answers = [httpx.get(f"{gw}/api/v1/live/H", params={"api_key": key}) for _ in range(6)]
    ok = [a for a in answers if a.status_code == 200]
    assert ok, [a.status_code for a in answers]
    for a in answers:
        assert a.headers["ratelimit-policy"] == '"std";q=5;w=3'
        assert a.headers["x-ratelimit-limit"] == "5"
        r_value = a.headers["ratelimit"].split(";r=")[1].split(";")[0]
        assert r_value == a.headers["x-ratelimit-remaining"]
    assert ok[0].headers["ratelimit"] == '"std";r=4;t=1'  # a fresh key: its burst less one
    limited = [a for a in answers if a.status_code == 429]
    for a in limited:
        assert a.headers["ratelimit"].startswith('"std";r=0;t=')
        assert int(a.headers["retry-after"]) >= 1
