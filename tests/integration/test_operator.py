"""The operator end to end against a real kube-apiserver, with a gateway following its table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import redis
import yaml
from kubernetes.client.rest import ApiException

from tollgate_common.contracts.routes import TABLE_KEY, RouteTable
from tollgate_testkit.provider import Provider, RedisHandle
from tollgate_testkit.receivers import wait_for
from tollgate_testkit.services import Service, start_gateway, start_operator
from tollgate_testkit.upstreams import DemoUpstream

pytestmark = pytest.mark.kube
ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "deploy/helm/tollgate/crds/apibackends.tollgate.dev.yaml"
GROUP, VERSION, PLURAL = "tollgate.dev", "v1alpha1", "apibackends"


class Cluster:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.ext = kubernetes.client.ApiextensionsV1Api(self.client)

    def install_crd(self) -> None:
        body = yaml.safe_load(CRD.read_text())
        try:
            self.ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        wait_for(self._established, timeout=30)

    def _established(self) -> bool:
        crd = self.ext.read_custom_resource_definition("apibackends.tollgate.dev")
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    def namespace(self) -> str:
        ns = f"t-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace({"metadata": {"name": ns}})
        return ns

    def apply(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ApiBackend",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, body
        )
        return result

    def patch(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {"spec": spec})

    def delete(self, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, name
            )
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def ready(self, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.get(ns, name) or {}
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c["type"] == "Ready":
                return dict(c)
        return None


@pytest.fixture(scope="module")
def env(
    kube: Path, tmp_path_factory: pytest.TempPathFactory, fixture_provider: Provider
) -> Iterator[Env]:
    """CRD installed; redis; two upstreams; the operator; a gateway following the table."""
    work = tmp_path_factory.mktemp("operator")
    cluster = Cluster(kube)
    cluster.install_crd()
    rs = fixture_provider.redis(work / "redis")
    ups = [fixture_provider.upstream(n, work) for n in ("a", "b")]
    started: list[Service] = []
    try:
        started.append(start_operator(work, rs.url, kube, DRIFT_CHECK_SECONDS="1"))
        started.append(start_gateway(work, rs.url, TABLE_POLL_SECONDS="0.5"))
        yield Env(cluster, rs, ups, work, kube, started)
    finally:
        for s in started:
            s.stop()
        for u in ups:
            u.stop()
        rs.stop()


class Env:
    def __init__(
        self,
        cluster: Cluster,
        redis: RedisHandle,
        ups: list[DemoUpstream],
        work: Path,
        kube: Path,
        started: list[Service],
    ) -> None:
        self.cluster, self.redis, self.ups, self.work = cluster, redis, ups, work
        self.kube, self.started = kube, started

    @property
    def operator(self) -> Service:
        return self.started[0]

    @property
    def gateway(self) -> Service:
        return self.started[1]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.gateway.url}/api/v1{path}", timeout=10)

    def table(self) -> RouteTable:
        raw = redis.Redis.from_url(self.redis.url).get(TABLE_KEY)
        return RouteTable.loads(raw) if raw else RouteTable()


def spec(prefix: str, *urls: str, **extra: Any) -> dict[str, Any]:
    return {"pathPrefix": prefix, "endpoints": [{"url": u} for u in urls], **extra}


def test_apply_patch_delete_through_the_gateway(env: Env) -> None:
    """Apply: the gateway serves the new route within seconds; patch: it changes; delete: 404."""
    ns = env.cluster.namespace()
    a, b = env.ups
    env.cluster.apply(ns, "eod", spec(f"/{ns}", a.url))
    wait_for(lambda: env.get(f"/{ns}/AAPL").status_code == 200, timeout=15)
    assert env.get(f"/{ns}/AAPL").json()["server"] == "a"
    env.cluster.patch(ns, "eod", {"endpoints": [{"url": b.url}]})
    wait_for(lambda: env.get(f"/{ns}/MSFT").json().get("server") == "b", timeout=15)
    env.cluster.delete(ns, "eod")
    wait_for(lambda: env.get(f"/{ns}/AAPL").status_code == 404, timeout=15)
    assert env.get(f"/{ns}/AAPL").json()["message"].startswith("no such route")
    wait_for(lambda: env.cluster.get(ns, "eod") is None, timeout=15)  # finalizer released


def test_status_tells_the_truth(env: Env) -> None:
    """Ready=True with observedGeneration after apply, and it follows a new generation."""
    ns = env.cluster.namespace()
    obj = env.cluster.apply(ns, "eod", spec(f"/{ns}", env.ups[0].url))
    wait_for(lambda: (env.cluster.ready(ns, "eod") or {}).get("status") == "True", timeout=15)
    cond = env.cluster.ready(ns, "eod")
    assert cond is not None
    assert cond["reason"] == "Published"
    assert cond["observedGeneration"] == obj["metadata"]["generation"]
    env.cluster.patch(ns, "eod", {"timeoutSeconds": 5})
    wait_for(
        lambda: (env.cluster.ready(ns, "eod") or {}).get("observedGeneration") == 2, timeout=15
    )
    status = (env.cluster.get(ns, "eod") or {})["status"]
    assert status["endpoints"] == 1
    assert 0 < status["tableVersion"] <= env.table().version


def test_conflicting_prefix_has_a_deterministic_winner(env: Env) -> None:
    """Two resources on one prefix: the older serves, the newer says who holds it."""
    ns = env.cluster.namespace()
    a, b = env.ups
    env.cluster.apply(ns, "first", spec(f"/{ns}", a.url))
    wait_for(lambda: env.get(f"/{ns}/X").status_code == 200, timeout=15)
    time.sleep(1.1)  # creationTimestamp has one-second resolution
    env.cluster.apply(ns, "second", spec(f"/{ns}", b.url))
    wait_for(
        lambda: (env.cluster.ready(ns, "second") or {}).get("reason") == "PrefixConflict",
        timeout=15,
    )
    assert f"held by {ns}/first" in (env.cluster.ready(ns, "second") or {})["message"]
    wait_for(
        lambda: f"{ns}/second" in (env.cluster.ready(ns, "first") or {}).get("message", ""),
        timeout=15,
    )
    assert env.get(f"/{ns}/X").json()["server"] == "a"
    env.cluster.delete(ns, "first")
    wait_for(lambda: env.get(f"/{ns}/X").json().get("server") == "b", timeout=15)
    wait_for(lambda: (env.cluster.ready(ns, "second") or {}).get("status") == "True", timeout=15)


def test_invalid_resource_is_refused_by_the_api_server(env: Env) -> None:
    """Schema violations never reach the operator: the API server says what is wrong."""
    ns = env.cluster.namespace()
    bad = {
        "pathPrefix": "eod/",
        "strategy": "random",
        "timeoutSeconds": 0,
        "endpoints": [{"url": "ftp://x"}],
    }
    with pytest.raises(ApiException) as err:
        env.cluster.apply(ns, "bad", bad)
    assert err.value.status == 422
    for field in (
        "spec.pathPrefix",
        "spec.strategy",
        "spec.timeoutSeconds",
        "spec.endpoints[0].url",
    ):
        assert field in err.value.body
    with pytest.raises(ApiException) as err:
        env.cluster.apply(ns, "empty", {"pathPrefix": "/x", "endpoints": []})
    assert "spec.endpoints" in err.value.body
    with pytest.raises(ApiException) as err:
        env.cluster.apply(
            ns,
            "both",
            {
                "pathPrefix": "/x",
                "endpoints": [{"url": "http://a:1", "service": {"name": "s", "port": 80}}],
            },
        )
    assert "exactly one of url or service" in err.value.body


def test_service_reference_resolves_to_cluster_dns(env: Env) -> None:
    """A Service endpoint becomes http://<name>.<namespace>.svc.cluster.local:<port>."""
    ns = env.cluster.namespace()
    env.cluster.apply(
        ns,
        "svc",
        {"pathPrefix": f"/{ns}", "endpoints": [{"service": {"name": "eod-api", "port": 8080}}]},
    )
    wait_for(lambda: any(r.name == f"{ns}/svc" for r in env.table().routes), timeout=15)
    route = next(r for r in env.table().routes if r.name == f"{ns}/svc")
    assert route.spec.endpoints[0].url == f"http://eod-api.{ns}.svc.cluster.local:8080"


def test_redis_flush_and_operator_restart_restore_the_table(env: Env) -> None:
    """Redis losing its data and an operator restart both lead back to the right table."""
    ns = env.cluster.namespace()
    env.cluster.apply(ns, "eod", spec(f"/{ns}", env.ups[0].url))
    wait_for(lambda: env.get(f"/{ns}/X").status_code == 200, timeout=15)
    redis.Redis.from_url(env.redis.url).flushall()
    wait_for(lambda: any(r.name == f"{ns}/eod" for r in env.table().routes), timeout=15)
    assert env.get(f"/{ns}/X").status_code == 200
    env.started[0].stop()
    redis.Redis.from_url(env.redis.url).flushall()
    env.started[0] = start_operator(env.work, env.redis.url, env.kube, DRIFT_CHECK_SECONDS="1")
    wait_for(lambda: any(r.name == f"{ns}/eod" for r in env.table().routes), timeout=20)
    wait_for(lambda: env.get(f"/{ns}/Y").status_code == 200, timeout=15)


def events_of(env: Env, ns: str, name: str) -> list[tuple[str, str]]:
    items = env.cluster.core.list_namespaced_event(
        ns, field_selector=f"involvedObject.kind=ApiBackend,involvedObject.name={name}"
    ).items
    return [(e.type, e.reason) for e in items]


def test_status_changes_post_kubernetes_events(env: Env) -> None:
    """Published is a Normal event; losing a prefix conflict is a Warning; none per drift check."""
    ns = env.cluster.namespace()
    a, b = env.ups
    env.cluster.apply(ns, "holder", spec(f"/{ns}", a.url))
    wait_for(lambda: ("Normal", "Published") in events_of(env, ns, "holder"), timeout=15)
    time.sleep(1.1)  # creationTimestamp has one-second resolution
    env.cluster.apply(ns, "late", spec(f"/{ns}", b.url))
    wait_for(lambda: ("Warning", "PrefixConflict") in events_of(env, ns, "late"), timeout=15)
    time.sleep(3)  # three drift checks (DRIFT_CHECK_SECONDS=1) post nothing new
    assert events_of(env, ns, "late").count(("Warning", "PrefixConflict")) == 1


@pytest.mark.parametrize(
    ("endpoints", "extra", "says"),
    [
        ([{"service": {"name": "payments.prod.svc.cluster.local/", "port": 80}}], {}, "name"),
        ([{"service": {"name": "evil.example/", "port": 80}}], {}, "name"),
        ([{"service": {"name": "quotes"}}], {}, "port"),
        ([{"url": "http://a:1"}, {"url": "http://a:1"}], {}, "duplicate endpoint url"),
        (
            [{"service": {"name": "q", "port": 80}}, {"service": {"name": "q", "port": 80}}],
            {},
            "duplicate endpoint service",
        ),
        ([{"url": "http://a:1"}], {"headers": {"bad name": "x"}}, "RFC 9110"),
        ([{"url": "http://a:1"}], {"headers": {"x-a": "1\r\nx-b: 2"}}, "line breaks"),
        ([{"url": "http://a:1"}], {"creditCost": 10**12}, "creditCost"),
    ],
)
def test_crd_refuses_what_could_escape_or_break_a_route(
    env: Env, endpoints: list[dict[str, Any]], extra: dict[str, Any], says: str
) -> None:
    """Service names are DNS labels with a port, endpoints unique, headers valid, cost bounded."""
    ns = env.cluster.namespace()
    with pytest.raises(ApiException) as err:
        env.cluster.apply(ns, "bad", {"pathPrefix": "/x", "endpoints": endpoints, **extra})
    assert err.value.status == 422
    assert says in err.value.body
