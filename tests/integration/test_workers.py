"""``WORKERS`` > 1: forked workers share the port (SO_REUSEPORT), each serves, SIGTERM stops all
of them cleanly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tollgate_testkit.provider import Provider
from tollgate_testkit.services import start_gateway

from .conftest import routes_yaml


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_two_workers_serve_and_stop_cleanly(tmp_path: Path, fixture_provider: Provider) -> None:
    """Both workers serve, each with its own request-id prefix; SIGTERM stops them all."""
    redis = fixture_provider.redis(tmp_path / "redis")
    up = fixture_provider.upstream("up", tmp_path)
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(up.url))
    gw = start_gateway(tmp_path, redis.url, ROUTES_FILE=str(routes), WORKERS="2")
    try:
        workers = _children(gw.proc.pid)
        assert len(workers) == 2
        seen_ids: set[str] = set()
        deadline = time.monotonic() + 20  # the second worker may still be starting
        with httpx.Client(timeout=10) as c:
            while len(seen_ids) < 2 and time.monotonic() < deadline:
                # A new connection each time: the kernel spreads them over the workers.
                r = c.get(f"{gw.url}/api/v1/live/AAPL", headers={"connection": "close"})
                assert r.status_code == 200
                seen_ids.add(r.headers["x-request-id"][:12])  # the per-worker id prefix
        assert len(seen_ids) == 2  # both serve, and each drew its own request-id prefix
        assert gw.proc.stop() == 0
        assert not any(os.path.exists(f"/proc/{w}") for w in workers)
    finally:
        gw.stop()
        up.stop()
        redis.stop()
