"""Black-box fixtures: Tollgate's services as real processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tollgate_testkit.prometheus import metric as metric  # the tests import it from here
from tollgate_testkit.provider import Provider, RedisHandle
from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.services import ADMIN_TOKEN, Service, start_auth, start_gateway
from tollgate_testkit.upstreams import DemoUpstream, Upstream


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
    mode: str = "http"
    upstreams: list[DemoUpstream] = field(default_factory=list)

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


@contextmanager
def open_stack(
    work: Path,
    mode: str,
    routes: str | None = None,
    upstreams: list[DemoUpstream] | None = None,
    *,
    provider: Provider | None = None,
    appendonly: bool = False,
    **gateway_env: str,
) -> Iterator[Stack]:
    """redis, two auth processes, two gateways: each asking its own auth service over HTTP, or
    (AUTH_MODE=redis) running the ledger script itself; all stopped on exit, in reverse order,
    whatever failed to start. ``routes`` defaults to routes_yaml on a fresh upstream; the given
    ``upstreams`` are stopped with the stack. Redis and the default upstream come from
    ``provider`` when given (a Redis with the chart's append-only file is always a process)."""
    with ExitStack() as cleanup:
        if provider is not None and not appendonly:
            redis: RedisHandle = provider.redis(work / "redis")
        else:
            redis = RedisServer(work / "redis", appendonly=appendonly)
        cleanup.callback(redis.stop)
        ups = list(upstreams or [])
        for up in ups:
            cleanup.callback(up.stop)
        if routes is None:
            ups.insert(0, provider.upstream("up", work) if provider else Upstream("up", work))
            cleanup.callback(ups[0].stop)
            routes = routes_yaml(ups[0].url)
        assert ups, "routes given without their upstreams"
        path = work / "routes.yaml"
        path.write_text(routes)
        auths: list[Service] = []
        for _ in range(2):
            auths.append(start_auth(work, redis.url, KEY_PEPPER=PEPPER))
            cleanup.callback(auths[-1].stop)
        gateways: list[Service] = []
        env = {"AUTH_MODE": mode, "KEY_PEPPER": PEPPER, **gateway_env}
        for a in auths:
            gateways.append(
                start_gateway(work, redis.url, ROUTES_FILE=str(path), AUTH_URL=a.url, **env)
            )
            cleanup.callback(gateways[-1].stop)
        yield Stack(redis, ups[0], auths, gateways, mode, ups)


@contextmanager
def running_stack(work: Path, provider: Provider, auth_mode: str) -> Iterator[Stack]:
    """The standard stack with Redis and the upstream from ``provider``."""
    with open_stack(work, auth_mode, provider=provider) as s:
        yield s


@pytest.fixture(scope="module", params=["http", "redis"])
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    fixture_provider: Provider,
) -> Iterator[Stack]:
    """The whole stack (``running_stack``) per module, in both auth modes."""
    with running_stack(tmp_path_factory.mktemp("stack"), fixture_provider, request.param) as s:
        yield s
