"""GET /_tollgate/v1/me through the whole stack (both auth modes): a consumer's own key id,
plan, credits, rate-limit state and next refill; never charged, limited by the key's own rate,
401 for a missing or unknown key."""

from __future__ import annotations

import time
from typing import Any

import httpx

from .conftest import Stack

ME = "/_tollgate/v1/me"


def plan(stack: Stack, name: str, **body: Any) -> None:
    with stack.admin() as c:
        c.put(f"/v1/admin/plans/{name}", json={"name": name, **body}).raise_for_status()


def test_me_answers_the_keys_own_view(stack: Stack) -> None:
    """200: key id, plan, credits, the rate limit and the next refill; no-store, the rate-limit
    headers of any authorized answer, and no key in the body."""
    plan(stack, "me-std", rate=100, burst=10, refill={"amount": 5, "interval": "daily"})
    key_id, key = stack.new_key(50, plan="me-std")
    r = httpx.get(f"{stack.gateways[0].url}{ME}", params={"api_key": key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] is True
    assert (body["key_id"], body["plan"], body["credits"]) == (key_id, "me-std", 50)
    assert body["rate_limit"]["limit"] == 10
    assert body["rate_limit"]["remaining"] == 9
    assert time.time() < body["next_refill"] <= time.time() + 86400
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["ratelimit-policy"] == '"me-std";q=10;w=1'
    assert r.headers["x-credits-remaining"] == "50"
    assert key not in r.text


def test_me_is_never_charged(stack: Stack) -> None:
    """Many calls on both gateways, key in the query or a header: the credits stay, and usage
    counts no request."""
    key_id, key = stack.new_key(3)
    for i in range(10):
        gw = stack.gateways[i % 2].url
        r = httpx.get(f"{gw}{ME}", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        assert r.json()["credits"] == 3
        assert r.json()["rate_limit"] is None  # no plan: no rate limit
        assert r.json()["next_refill"] is None
    assert stack.credits(key_id) == 3
    with stack.admin() as c:
        usage = c.get(f"/v1/admin/keys/{key_id}/usage").json()
    assert usage["total"]["requests"] == 0


def test_me_is_limited_by_the_keys_rate(stack: Stack) -> None:
    """A burst of 2 at the slowest rate: the third /me is 429 with Retry-After, and the key's
    API requests share that limit (one GCRA)."""
    plan(stack, "me-slow", rate=0.001, burst=2)
    _, key = stack.new_key(10, plan="me-slow")
    gw = stack.gateways[0].url
    codes = [httpx.get(f"{gw}{ME}", params={"api_key": key}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = httpx.get(f"{gw}{ME}", params={"api_key": key})
    assert limited.json()["status"] is False
    assert int(limited.headers["retry-after"]) >= 1
    assert httpx.get(f"{gw}/api/v1/live/ME", params={"api_key": key}).status_code == 429


def test_me_without_a_known_key_is_401(stack: Stack) -> None:
    """No key, an unknown key (well-formed or not): 401 in the JSON shape of any route."""
    gw = stack.gateways[0].url
    for params in ({}, {"api_key": "tg_aaaaaaaa_" + "x" * 43}, {"api_key": "nonsense"}):
        r = httpx.get(f"{gw}{ME}", params=params)
        assert r.status_code == 401, r.text
        assert r.json()["status"] is False


def test_me_answers_get_only(stack: Stack) -> None:
    """POST is 405, and charges nothing."""
    key_id, key = stack.new_key(2)
    r = httpx.post(f"{stack.gateways[0].url}{ME}", params={"api_key": key})
    assert r.status_code == 405
    assert stack.credits(key_id) == 2
