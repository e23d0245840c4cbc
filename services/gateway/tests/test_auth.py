"""HttpAuthorizer against a real auth service: what is "unavailable" and what is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollgate_gateway.auth import HttpAuthorizer
from tollgate_gateway.client import UpstreamPool
from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.services import start_auth


async def test_refused_input_is_not_unavailable(tmp_path: Path, redis_url: str) -> None:
    """Auth's 400 (a key over its limit) is a client error, never "unavailable" (failOpen)."""
    auth = start_auth(tmp_path, redis_url)
    pool = UpstreamPool()
    try:
        authorizer = HttpAuthorizer(auth.url, pool, 5.0)
        d = await authorizer.authorize("k" * 300, "r", "/x", 1, "127.0.0.1", "charge0001")
        assert not d.allowed
        assert d.reason not in ("ok", "unavailable")
    finally:
        await pool.aclose()
        auth.stop()


async def test_unreachable_auth_is_unavailable(tmp_path: Path) -> None:
    """Nothing listening: "unavailable", the one answer failOpen may serve through."""
    pool = UpstreamPool(connect_timeout=1.0)
    try:
        authorizer = HttpAuthorizer("http://127.0.0.1:1", pool, 2.0)
        d = await authorizer.authorize("k", "r", "/x", 1, "127.0.0.1", "charge0001")
        assert d.reason == "unavailable"
        assert d.sent is False  # so no refund is owed for it
    finally:
        await pool.aclose()


@pytest.mark.parametrize("mode", ["notfound", "ok"])
async def test_an_answer_that_is_not_auths_is_no_decision(tmp_path: Path, mode: str) -> None:
    """AUTH_URL pointing at something else (a 404, a 200 without a reason): "auth_error", so
    neither the client's fault nor a failOpen route's free pass."""
    up = Upstream("not-auth", tmp_path, mode=mode)
    pool = UpstreamPool()
    try:
        authorizer = HttpAuthorizer(up.url, pool, 5.0)
        d = await authorizer.authorize("k", "r", "/x", 1, "127.0.0.1", "charge0001")
        assert d.reason == "auth_error"
    finally:
        await pool.aclose()
        up.stop()
