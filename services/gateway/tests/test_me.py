"""GET /_tollgate/v1/me: its answer's shape (pure), an open proxy's answer, and the public port
of a gateway with an admin port (the whole path, both auth modes: tests/integration/test_me.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tollgate_common.ledger import Decision
from tollgate_gateway.me import ME_PATH, me_body
from tollgate_testkit.ports import free_port

from .conftest import RunningGateway

Factory = Callable[..., RunningGateway]


def test_the_body_carries_the_view_and_no_secret() -> None:
    """Key id, plan, credits, the rate limit (remaining never negative) and the next refill."""
    d = Decision(
        allowed=True,
        limit=5,
        remaining=-1,
        reset=1.5,
        window=3.0,
        credits_remaining=7,
        plan="std",
        next_refill=1_767_225_600.0,
        key_id="abcdefgh",
    )
    assert me_body(d, "abcdefgh") == {
        "status": True,
        "key_id": "abcdefgh",
        "plan": "std",
        "credits": 7,
        "rate_limit": {"limit": 5, "remaining": 0, "reset": 1.5, "window": 3.0},
        "next_refill": 1_767_225_600.0,
    }


def test_no_rate_limit_and_no_refill_are_null() -> None:
    """A key without a plan: rate_limit and next_refill are null."""
    body = me_body(Decision(allowed=True, credits_remaining=3), "abcdefgh")
    assert (body["rate_limit"], body["next_refill"]) == (None, None)


def test_an_open_proxy_has_no_me(gateway_factory: Factory) -> None:
    """No auth configured: 404 in the JSON shape, not a crash."""
    gw = gateway_factory("")
    r = httpx.get(f"{gw.url}{ME_PATH}", params={"api_key": "tg_abcdefgh_" + "x" * 43})
    assert r.status_code == 404
    assert r.json()["status"] is False


def test_me_stays_on_the_public_port(gateway_factory: Factory) -> None:
    """With an admin port, the public port still answers /me (a 401 without a key), as the
    consumers' endpoint it is."""
    gw = gateway_factory("", auth_mode="redis", admin_port=free_port())
    r = httpx.get(f"{gw.url}{ME_PATH}")
    assert r.status_code == 401
    assert r.headers["cache-control"] == "no-store"
