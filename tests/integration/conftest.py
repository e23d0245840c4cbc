"""Black-box fixtures: Tollgate's services as real processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tollgate_testkit.provider import Provider, RedisHandle
from tollgate_testkit.services import ADMIN_TOKEN, Service, start_auth, start_gateway
from tollgate_testkit.upstreams import DemoUpstream


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
    redis: RedisHandle
    upstream: DemoUpstream
    auths: list[Service]
    gateways: list[Service]

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


@contextmanager
def running_stack(work: Path, provider: Provider, auth_mode: str) -> Iterator[Stack]:
    """redis, one upstream, two auth processes, two gateways: each asking its own auth service
    over HTTP, or (AUTH_MODE=redis) running the ledger script itself; all stopped on exit, in
    reverse order, whatever failed to start. Redis and the upstream come from ``provider``."""
    with ExitStack() as cleanup:
        redis = provider.redis(work / "redis")
        cleanup.callback(redis.stop)
        up = provider.upstream("up", work)
        cleanup.callback(up.stop)
        routes = work / "routes.yaml"
        routes.write_text(routes_yaml(up.url))
        auths: list[Service] = []
        for _ in range(2):
            auths.append(start_auth(work, redis.url, KEY_PEPPER=PEPPER))
            cleanup.callback(auths[-1].stop)
        gateways: list[Service] = []
        mode = {"AUTH_MODE": auth_mode, "KEY_PEPPER": PEPPER}
        for a in auths:
            gateways.append(
                start_gateway(work, redis.url, ROUTES_FILE=str(routes), AUTH_URL=a.url, **mode)
            )
            cleanup.callback(gateways[-1].stop)
        yield Stack(redis, up, auths, gateways)


@pytest.fixture(scope="module", params=["http", "redis"])
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    fixture_provider: Provider,
) -> Iterator[Stack]:
    """The whole stack (``running_stack``) per module, in both auth modes."""
    with running_stack(tmp_path_factory.mktemp("stack"), fixture_provider, request.param) as s:
        yield s
