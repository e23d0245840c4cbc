"""Black-box fixtures: Tollgate's services as real processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.services import ADMIN_TOKEN, Service, start_auth, start_gateway


def routes_yaml(upstream: str) -> str:
    return f"""
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: eod, namespace: default}}
spec:
  pathPrefix: /eod
  endpoints: [{{url: "{upstream}"}}]
  cache: {{ttlSeconds: 60}}
  creditCost: 1
---
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: live, namespace: default}}
spec:
  pathPrefix: /live
  endpoints: [{{url: "{upstream}"}}]
  creditCost: 1
---
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: free, namespace: default}}
spec:
  pathPrefix: /free
  endpoints: [{{url: "{upstream}"}}]
  creditCost: 0
  failOpen: true
---
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: broken, namespace: default}}
spec:
  pathPrefix: /broken
  endpoints: [{{url: "http://127.0.0.1:1"}}]
  creditCost: 3
"""


PEPPER = "integration-pepper"


@dataclass
class Stack:
    redis: RedisServer
    upstream: Upstream
    auths: list[Service]
    gateways: list[Service]
    mode: str = "http"
    upstreams: list[Upstream] = field(default_factory=list)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.auths[0].url,
            timeout=10,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    def new_key(self, credits: int, plan: str = "") -> tuple[str, str]:
        with self.admin() as c:
            r = c.post("/v1/admin/keys", json={"credits": credits, "plan": plan})
            r.raise_for_status()
            return r.json()["id"], r.json()["key"]

    def credits(self, key_id: str) -> int:
        with self.admin() as c:
            return int(c.get(f"/v1/admin/keys/{key_id}").json()["credits"])

    def gateway_metric(self, name: str, **labels: str) -> float:
        """The sum over both gateways of one Prometheus sample (0 when absent)."""
        return sum(metric(g.url, name, **labels) for g in self.gateways)


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of a service's /metrics, summed over the label sets that match ``labels``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        sample, _, rest = head.partition("{")
        if sample != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


@contextmanager
def open_stack(
    work: Path,
    mode: str,
    routes: str | None = None,
    upstreams: list[Upstream] | None = None,
    *,
    appendonly: bool = False,
    **gateway_env: str,
) -> Iterator[Stack]:
    """redis, two auth processes, two gateways: each asking its own auth service over HTTP, or
    (AUTH_MODE=redis) running the ledger script itself. ``routes`` defaults to routes_yaml on a
    fresh upstream; the given ``upstreams`` are stopped with the stack."""
    redis = RedisServer(work / "redis", appendonly=appendonly)
    ups = list(upstreams or [])
    if routes is None:
        ups.insert(0, Upstream("up", work))
        routes = routes_yaml(ups[0].url)
    path = work / "routes.yaml"
    path.write_text(routes)
    started: list[Service] = []
    try:
        auths = [start_auth(work, redis.url, KEY_PEPPER=PEPPER) for _ in range(2)]
        started += auths
        env = {"AUTH_MODE": mode, "KEY_PEPPER": PEPPER, **gateway_env}
        gateways = [
            start_gateway(work, redis.url, ROUTES_FILE=str(path), AUTH_URL=a.url, **env)
            for a in auths
        ]
        started += gateways
        assert ups, "routes given without their upstreams"
        yield Stack(redis, ups[0], auths, gateways, mode, ups)
    finally:
        for s in reversed(started):
            s.stop()
        for up in ups:
            up.stop()
        redis.stop()


@pytest.fixture(scope="module", params=["http", "redis"])
def stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """redis, one upstream, two auth processes, two gateways, in each auth mode."""
    with open_stack(tmp_path_factory.mktemp("stack"), request.param) as s:
        yield s
