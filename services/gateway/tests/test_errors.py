"""Errors and the rate-limit headers as the client reads them (pure)."""

from __future__ import annotations

import re

from tollgate_common.ledger import Decision
from tollgate_gateway.errors import decision_headers

# draft-ietf-httpapi-ratelimit-headers-10: one sf-item, a String naming the policy, with Integers
POLICY = re.compile(r'^"[a-z0-9_-]+";q=\d+;w=\d+$')
LIMIT = re.compile(r'^"[a-z0-9_-]+";r=\d+;t=\d+$')


def headers(d: Decision) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in decision_headers(d)}


def test_one_window_for_every_rate_limit_header() -> None:
    """A 2 req/s plan with a burst of 5: 5 requests per 3 s window (its 2.5 s refill, rounded
    up), 4 left now, all back within 1 s; the X- trio says the same numbers."""
    d = Decision(allowed=True, limit=5, remaining=4, reset=0.5, window=2.5, plan="gold")
    h = headers(d)
    assert h["ratelimit-policy"] == '"gold";q=5;w=3'
    assert h["ratelimit"] == '"gold";r=4;t=1'
    assert (h["x-ratelimit-limit"], h["x-ratelimit-remaining"], h["x-ratelimit-reset"]) == (
        "5",
        "4",
        "1",
    )
    assert POLICY.match(h["ratelimit-policy"])
    assert LIMIT.match(h["ratelimit"])


def test_the_stated_rate_is_never_above_the_plan() -> None:
    """q/w, the rate the policy states, stays at or under the plan's rate for any burst."""
    for rate, burst in [(2, 5), (3, 1), (0.05, 5), (1000, 10_000), (0.001, 1), (7, 3)]:
        window = max(int(1000 / rate), 1) * burst / 1000  # authorize.lua's tolerance
        d = Decision(allowed=True, limit=burst, remaining=0, reset=0, window=window)
        q, w = re.findall(r"q=(\d+);w=(\d+)", headers(d)["ratelimit-policy"])[0]
        assert int(q) / int(w) <= rate * 1.0001, (rate, burst)


def test_rate_limited_answers_say_when() -> None:
    """Limited: nothing remains now, Retry-After is the wait for one more."""
    d = Decision(
        allowed=False,
        reason="rate_limited",
        limit=1,
        remaining=0,
        reset=19.5,
        retry_after=19.5,
        window=20,
    )
    h = headers(d)
    assert h["ratelimit"] == '"default";r=0;t=20'
    assert h["retry-after"] == "20"


def test_no_rate_limit_no_rate_limit_headers() -> None:
    """A key without a rate-limited plan gets its credits header only."""
    h = headers(Decision(allowed=True, credits_remaining=7))
    assert h == {"x-credits-remaining": "7"}
