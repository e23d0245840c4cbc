"""The bench's own keys against a real redis-server and a real auth service (started by PID)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.servers import NEVER_BITES_BURST
from bench.targets import Env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(tmp_path_factory.mktemp("bench-env"))
    try:
        yield e
    finally:
        e.stop()


def authorize(env: Env, key: str, n: int = 1) -> list[dict[str, Any]]:
    """``n`` authorize calls for ``key``, in order, on one keep-alive connection."""
    with httpx.Client(base_url=env.auth_url) as c:
        answers = []
        for _ in range(n):
            r = c.post("/v1/authorize", json={"key": key, "path": "/live/AAPL"})
            r.raise_for_status()
            answers.append(r.json())
        return answers


def test_bench_key_is_rate_limited_but_never_limited(env: Env) -> None:
    """The timed key's plan has a rate limit: the GCRA step runs on every request (the answer
    carries its limit), and its tolerance is far beyond any run, so it never bites."""
    answers = authorize(env, env.api_key, 20)
    assert {a["reason"] for a in answers} == {"ok"}
    assert all(a.get("limit") == NEVER_BITES_BURST for a in answers)
    assert min(a["remaining"] for a in answers) > 10**9


def test_smoke_key_is_limited_by_its_second_request(env: Env) -> None:
    """The smoke key's plan allows one request: the next is rate limited."""
    first, second = authorize(env, env.smoke_key, 2)
    assert (first["reason"], second["reason"]) == ("ok", "rate_limited")


def test_keys_are_made_once(env: Env) -> None:
    """Asking for the keys twice makes no second key."""
    assert env.api_key == env.api_key
    assert env.smoke_key == env.smoke_key != env.api_key
