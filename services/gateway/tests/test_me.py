"""GET /_tollgate/v1/me: its answer's shape (pure), an open proxy's answer, and the public port
of a gateway with an admin port (the whole path, both auth modes: tests/integration/test_me.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import redis

from tollgate_common.ledger import Decision, layout
from tollgate_common.ledger.apikeys import key_hash
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


@pytest.mark.usefixtures("old_layout_possible")  # never on a Redis Cluster (ledger/migration.py)
def test_a_key_of_the_old_layout_is_served_in_redis_mode(
    gateway_factory: Factory, redis_url: str
) -> None:
    """AUTH_MODE=redis on a Redis auth has not migrated yet (issue 13): the gateway's ledger
    moves the key it is asked for and answers from the moved record and plan."""
    raw = "tg_oldgate2_" + "s" * 43
    h = key_hash(raw)
    with redis.Redis.from_url(redis_url) as r:
        r.hset(layout.plan_key("p"), mapping={"rate": 1, "burst": 3})
        fields = {"id": "oldgate2", "credits": 6, "plan": "p", "revoked": 0, "expires_at": 0}
        r.hset(layout.legacy_record_key(h), mapping=fields)
    gw = gateway_factory("", auth_mode="redis")
    got = httpx.get(f"{gw.url}{ME_PATH}", headers={"X-API-Key": raw})
    assert got.status_code == 200
    body = got.json()
    assert (body["credits"], body["plan"], body["rate_limit"]["limit"]) == (6, "p", 3)
    with redis.Redis.from_url(redis_url) as r:
        assert r.exists(layout.legacy_record_key(h)) == 0
        assert r.exists(layout.record_key("oldgate2", h)) == 1
