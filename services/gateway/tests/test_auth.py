"""HttpAuthorizer against a real auth service: what is "unavailable" and what is not."""

from __future__ import annotations

from pathlib import Path

from tollgate_gateway.auth import HttpAuthorizer
from tollgate_gateway.client import UpstreamPool
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
    finally:
        await pool.aclose()
