"""The Helm chart: lint, render, security defaults, settings in step with the services, and a
real install/upgrade/uninstall against a kube-apiserver, with the operator running on exactly
the RBAC the chart grants it."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import redis
import yaml

from tollgate_auth.settings import AuthSettings
from tollgate_common.contracts.routes import TABLE_KEY
from tollgate_common.ledger import LedgerSettings
from tollgate_gateway.settings import GatewaySettings
from tollgate_notifier.settings import NotifierSettings
from tollgate_operator.settings import OperatorSettings
from tollgate_testkit.kube import tool
from tollgate_testkit.provider import Provider
from tollgate_testkit.receivers import wait_for
from tollgate_testkit.services import start_operator

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/tollgate"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
HELM = tool("helm")
KUBE_VERSION = "1.36.3"
SETTINGS = {
    "GATEWAY": GatewaySettings,
    "AUTH": AuthSettings,
    "NOTIFIER": NotifierSettings,
    "OPERATOR": OperatorSettings,
}

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not built: run `make install`")


def helm(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, env=env, timeout=120)


def render(*values: str, **sets: str) -> list[dict[str, Any]]:
    args = ["template", "t", str(CHART), "--kube-version", KUBE_VERSION]
    for v in values:
        args += ["-f", v]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    r = helm(*args)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def deployments(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "Deployment"]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_strict(values: Path) -> None:
    """helm lint --strict passes with every ci/ values file."""
    r = helm("lint", "--strict", str(CHART), "-f", str(values), "--kube-version", KUBE_VERSION)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_pods_are_locked_down(values: Path) -> None:
    """Every pod: non-root, no privilege escalation, all capabilities dropped, read-only root."""
    for d in deployments(render(str(values))):
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "resources" in c


def test_every_container_says_when_it_is_ready() -> None:
    """A pod counted Ready before its process listens is scraped, or sent traffic, too early
    (the operator's /metrics refused connections right after a restart)."""
    for d in deployments(render()):
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in c, f"{d['metadata']['name']}/{c['name']}"


def test_selector_labels_carry_no_version() -> None:
    """Selectors are immutable: no chart version or app version in them."""
    for d in deployments(render()):
        selector = d["spec"]["selector"]["matchLabels"]
        assert not {"helm.sh/chart", "app.kubernetes.io/version"} & selector.keys()
        assert selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_env_matches_the_settings_classes(values: Path) -> None:
    """Every TOLLGATE_<SVC>_* variable the chart sets is a field of that service's settings."""
    for d in deployments(render(str(values))):
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                svc = e["name"].split("_")[1]
                if e["name"].startswith("TOLLGATE_") and svc in SETTINGS:
                    field = e["name"][len(f"TOLLGATE_{svc}_") :].lower()
                    assert field in SETTINGS[svc].model_fields, f"{e['name']} is not a setting"


def ledger_env(deployment: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The ledger settings a deployment sets, by field name: each value or its secret source."""
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    fields = {f.upper() for f in LedgerSettings.model_fields}
    out = {}
    for e in container.get("env", []):
        name = e["name"].removeprefix(prefix)
        if e["name"].startswith(prefix) and name in fields:
            out[name] = e.get("value", e.get("valueFrom"))
    return out


@pytest.mark.parametrize("mode", ["http", "redis"])
def test_auth_and_gateway_get_the_same_ledger_settings(mode: str) -> None:
    """One `ledger:` block reaches both deployments alike, so in redis mode the gateway runs the
    script with exactly auth's settings (the pepper only where the gateway runs the script)."""
    sets = {
        "gateway.authMode": mode,
        "ledger.creditsLowThreshold": "7",
        "ledger.chargeTtlSeconds": "120",
        "ledger.usageRetentionDays": "30",
    }
    by_name = {d["metadata"]["name"]: d for d in deployments(render(**sets))}
    auth = ledger_env(by_name["t-tollgate-auth"], "TOLLGATE_AUTH_")
    gateway = ledger_env(by_name["t-tollgate-gateway"], "TOLLGATE_GATEWAY_")
    assert auth.keys() == {f.upper() for f in LedgerSettings.model_fields}
    assert auth["CREDITS_LOW_THRESHOLD"] == "7"
    assert auth["CHARGE_TTL_SECONDS"] == "120"
    if mode == "http":
        del auth["KEY_PEPPER"]  # the gateway does not hash keys: it keeps no copy of the secret
    assert gateway == auth


def test_the_key_expiring_window_reaches_the_notifier() -> None:
    """notifier.keyExpiringBeforeSeconds becomes the notifier's setting (default 7 days)."""

    def window(**sets: str) -> str:
        by_name = {d["metadata"]["name"]: d for d in deployments(render(**sets))}
        env = by_name["t-tollgate-notifier"]["spec"]["template"]["spec"]["containers"][0]["env"]
        values = {e["name"]: e.get("value") for e in env}
        return str(values["TOLLGATE_NOTIFIER_KEY_EXPIRING_BEFORE_SECONDS"])

    assert window() == "604800"
    assert window(**{"notifier.keyExpiringBeforeSeconds": "3600"}) == "3600"
    default = NotifierSettings.model_fields["key_expiring_before_seconds"].default
    assert float(window()) == default


def test_secrets_never_render_as_plain_env() -> None:
    """Admin token, key pepper, Redis URL, SMTP password and webhook URL come from Secrets."""
    docs = render(str(CHART / "ci/external-redis-values.yaml"))
    secret_like = ("ADMIN_TOKEN", "KEY_PEPPER", "REDIS_URL", "SMTP_PASSWORD", "WEBHOOK_URL")
    for d in deployments(docs):
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if e["name"].endswith(secret_like):
                    assert "valueFrom" in e, e["name"]
                    assert "value" not in e, e["name"]


def test_unknown_values_are_rejected() -> None:
    """A typo in values fails the render instead of being ignored."""
    r = helm(
        "template", "t", str(CHART), "--kube-version", KUBE_VERSION, "--set", "gateway.replica=3"
    )
    assert r.returncode != 0
    assert "replica" in r.stderr


def test_an_empty_namespace_name_is_refused() -> None:
    """`--set operator.namespaces={}` renders [""]: an operator watching nothing, silently."""
    r = helm(
        "template", "t", str(CHART), "--kube-version", KUBE_VERSION,
        "--set", "operator.namespaces={}",
    )  # fmt: skip
    assert r.returncode != 0
    assert "namespaces" in r.stderr


def test_external_redis_requires_a_url() -> None:
    """Turning the in-chart Redis off without a URL fails with a message that says why."""
    r = helm(
        "template", "t", str(CHART), "--kube-version", KUBE_VERSION, "--set", "redis.enabled=false"
    )
    assert r.returncode != 0
    assert "externalUrl" in r.stderr


def test_namespaced_operator_gets_roles_not_cluster_rights() -> None:
    """Watching listed namespaces: a Role per namespace for ApiBackends; cluster-wide only what
    kopf lists there (CRDs, and namespaces to resolve its list against)."""
    docs = render(str(CHART / "ci/ha-values.yaml"))
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    cluster = [d for d in docs if d["kind"] == "ClusterRole"]
    granted = {
        (res, v) for c in cluster for r in c["rules"] for res in r["resources"] for v in r["verbs"]
    }
    assert granted == {
        ("customresourcedefinitions", "list"),
        ("customresourcedefinitions", "watch"),
        ("namespaces", "list"),
        ("namespaces", "watch"),
    }


def test_clusterwide_operator_grants_only_what_it_uses() -> None:
    """Watching every namespace: no namespace rights, no get (kopf lists and watches)."""
    [role] = [d for d in render() if d["kind"] == "ClusterRole"]
    granted = {(res, v) for r in role["rules"] for res in r["resources"] for v in r["verbs"]}
    assert granted == {
        ("apibackends", "list"),
        ("apibackends", "watch"),
        ("apibackends", "patch"),
        ("apibackends/status", "patch"),
        ("events", "create"),
        ("customresourcedefinitions", "list"),
        ("customresourcedefinitions", "watch"),
    }


def test_renders_without_kube_version() -> None:
    """The Helm that k8s-tools.sh builds knows its Kubernetes minor (the chart needs >= 1.28)."""
    r = helm("template", "t", str(CHART))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_only_the_operator_gets_a_service_account_token(values: Path) -> None:
    """Pods that never call the Kubernetes API mount no ServiceAccount token."""
    for d in deployments(render(str(values))):
        pod = d["spec"]["template"]["spec"]
        wants = d["metadata"]["name"].endswith("-operator")
        assert pod.get("automountServiceAccountToken", True) is wants, d["metadata"]["name"]


def test_metrics_stay_off_the_public_service() -> None:
    """The gateway's public Service exposes only the proxy port; /metrics has its own Service."""
    docs = render(**{"gateway.serviceType": "LoadBalancer"})
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    public = services["t-tollgate-gateway"]["spec"]
    assert public["type"] == "LoadBalancer"
    assert [p["targetPort"] for p in public["ports"]] == ["http"]
    metrics = services["t-tollgate-gateway-metrics"]["spec"]
    assert metrics.get("type", "ClusterIP") == "ClusterIP"
    assert [p["targetPort"] for p in metrics["ports"]] == ["admin"]
    [gw] = [d for d in deployments(docs) if d["metadata"]["name"] == "t-tollgate-gateway"]
    env = {
        e["name"]: e.get("value") for e in gw["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TOLLGATE_GATEWAY_ADMIN_PORT"] == "9090"


def test_auth_has_a_disruption_budget() -> None:
    """A drain never takes every auth pod at once."""
    pdbs = {d["metadata"]["name"] for d in render() if d["kind"] == "PodDisruptionBudget"}
    assert pdbs == {"t-tollgate-gateway", "t-tollgate-auth"}


def test_in_chart_redis_has_a_password_and_network_policies() -> None:
    """The in-chart Redis requires a generated password that every URL carries; only the
    release's pods may reach Redis and auth."""
    docs = render()
    [secret] = [
        d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-redis")
    ]
    password = secret["stringData"]["password"]
    assert len(password) == 32
    assert secret["stringData"]["url"] == f"redis://:{password}@t-tollgate-redis:6379/0"
    [redis_dep] = [d for d in deployments(docs) if d["metadata"]["name"] == "t-tollgate-redis"]
    args = redis_dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert set(policies) == {"t-tollgate-redis", "t-tollgate-auth"}
    for spec in policies.values():
        assert spec["policyTypes"] == ["Ingress"]
        [rule] = spec["ingress"]
        [peer] = rule["from"]
        assert peer["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "tollgate",
            "app.kubernetes.io/instance": "t",
        }


KIND_VALUES = str(ROOT / "deploy/kind/values.yaml")


def pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pod spec the chart renders: the Deployments' templates and the helm test pod."""
    return [d["spec"]["template"]["spec"] for d in deployments(docs)] + [
        d["spec"] for d in docs if d["kind"] == "Pod"
    ]


def built_images() -> set[str]:
    r = subprocess.run(
        ["bash", str(ROOT / "hack/images.sh"), "--list"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_kind_values_run_only_images_that_make_images_builds() -> None:
    """On kind every container (in-chart Redis, demo upstreams, helm test pod included) runs an
    image hack/images.sh builds and make deploy loads, and never pulls one."""
    docs = render(KIND_VALUES)
    containers = [c for p in pods(docs) for c in p.get("initContainers", []) + p["containers"]]
    assert {c["image"] for c in containers} <= built_images()
    assert {c["image"] for c in containers} >= {"local/redis:7", "tollgate/testkit:dev"}
    assert {c.get("imagePullPolicy") for c in containers} == {"Never"}


def test_kind_gateway_node_port_is_the_one_kind_maps() -> None:
    """The gateway's NodePort is the container port deploy/kind/cluster.yaml maps to localhost."""
    cluster = yaml.safe_load((ROOT / "deploy/kind/cluster.yaml").read_text())
    mapped = {m["containerPort"] for n in cluster["nodes"] for m in n["extraPortMappings"]}
    [svc] = [
        d
        for d in render(KIND_VALUES)
        if d["kind"] == "Service" and d["metadata"]["name"] == "t-tollgate-gateway"
    ]
    assert svc["spec"]["type"] == "NodePort"
    assert {p["nodePort"] for p in svc["spec"]["ports"]} == mapped


def test_node_port_is_left_to_kubernetes_by_default() -> None:
    """Without gateway.nodePort a NodePort Service gets a port Kubernetes picks."""
    docs = render(**{"gateway.serviceType": "NodePort"})
    [svc] = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "t-tollgate-gateway"
    ]
    assert all("nodePort" not in p for p in svc["spec"]["ports"])


@pytest.mark.kube
def test_install_upgrade_uninstall_and_least_privilege(
    kube: Path, tmp_path: Path, fixture_provider: Provider
) -> None:
    """helm install into a real API server; the operator, running with only the chart's RBAC
    (a ServiceAccount token), reconciles an ApiBackend; upgrade and uninstall work."""
    ns = f"h-{uuid.uuid4().hex[:6]}"
    r = helm("install", "tg", str(CHART), "-n", ns, "--create-namespace", kubeconfig=kube)
    assert r.returncode == 0, r.stderr
    api = kubernetes.config.new_client_from_config(config_file=str(kube))
    core = kubernetes.client.CoreV1Api(api)
    apps = kubernetes.client.AppsV1Api(api)
    names = {d.metadata.name for d in apps.list_namespaced_deployment(ns).items}
    assert names == {
        "tg-tollgate-gateway",
        "tg-tollgate-auth",
        "tg-tollgate-notifier",
        "tg-tollgate-operator",
        "tg-tollgate-redis",
    }
    token_secret = core.read_namespaced_secret("tg-tollgate-auth", ns)
    assert len(base64.b64decode(token_secret.data["admin-token"])) == 40
    redis_secret = core.read_namespaced_secret("tg-tollgate-redis", ns)

    # The operator's ServiceAccount, and nothing more.
    token = core.create_namespaced_service_account_token(
        "tg-tollgate-operator", ns, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    cfg = yaml.safe_load(kube.read_text())
    cfg["users"] = [{"name": "sa", "user": {"token": token}}]
    cfg["contexts"][0]["context"]["user"] = "sa"
    sa_kubeconfig = tmp_path / "sa-kubeconfig"
    sa_kubeconfig.write_text(yaml.safe_dump(cfg))
    rs = fixture_provider.redis(tmp_path / "redis")
    op = start_operator(tmp_path, rs.url, sa_kubeconfig, DRIFT_CHECK_SECONDS="1")
    try:
        custom = kubernetes.client.CustomObjectsApi(api)
        custom.create_namespaced_custom_object(
            "tollgate.dev",
            "v1alpha1",
            ns,
            "apibackends",
            {
                "apiVersion": "tollgate.dev/v1alpha1",
                "kind": "ApiBackend",
                "metadata": {"name": "eod"},
                "spec": {"pathPrefix": f"/{ns}", "endpoints": [{"url": "http://127.0.0.1:9"}]},
            },
        )

        def ready() -> bool:
            obj = custom.get_namespaced_custom_object(
                "tollgate.dev", "v1alpha1", ns, "apibackends", "eod"
            )
            conds = (obj.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        wait_for(ready, timeout=20)
        assert f"{ns}/eod".encode() in (redis.Redis.from_url(rs.url).get(TABLE_KEY) or b"")
        metrics = httpx.get(f"http://127.0.0.1:{op.port}/metrics").text
        assert "tollgate_operator_table_version" in metrics
        assert "Forbidden" not in op.proc.output()
    finally:
        op.stop()
        rs.stop()

    r = helm("upgrade", "tg", str(CHART), "-n", ns, "--set", "gateway.replicas=3", kubeconfig=kube)
    assert r.returncode == 0, r.stderr
    assert apps.read_namespaced_deployment("tg-tollgate-gateway", ns).spec.replicas == 3
    again = core.read_namespaced_secret("tg-tollgate-auth", ns)
    assert again.data["admin-token"] == token_secret.data["admin-token"]  # kept on upgrade
    assert (
        core.read_namespaced_secret("tg-tollgate-redis", ns).data["password"]
        == redis_secret.data["password"]
    )
    r = helm("uninstall", "tg", "-n", ns, kubeconfig=kube)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while apps.list_namespaced_deployment(ns).items:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_plain_rbac_file_is_the_charts() -> None:
    """deploy/rbac/operator-rbac.yaml is the chart's RBAC, rendered (kept in step)."""
    r = helm("template", "tollgate", str(CHART), "-s", "templates/operator-rbac.yaml")
    assert r.returncode == 0, r.stderr
    plain = (ROOT / "deploy/rbac/operator-rbac.yaml").read_text()
    assert list(yaml.safe_load_all(plain)) == list(yaml.safe_load_all(r.stdout))


def test_monitoring_objects_are_off_by_default() -> None:
    """No PrometheusRule or ServiceMonitor without their CRDs asked for (values default off)."""
    kinds = {d["kind"] for d in render()}
    assert not {"PrometheusRule", "ServiceMonitor"} & kinds


def test_prometheus_rule_is_the_plain_rules_file() -> None:
    """prometheusRule.enabled renders deploy/prometheus/tollgate-rules.yaml verbatim as the
    PrometheusRule's spec, with the extra labels a rule selector needs."""
    docs = render(**{"prometheusRule.enabled": "true", "prometheusRule.labels.release": "kps"})
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    plain = yaml.safe_load((ROOT / "deploy/prometheus/tollgate-rules.yaml").read_text())
    assert rule["spec"] == plain
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"


def test_every_service_is_scraped_on_its_metrics_port() -> None:
    """serviceMonitor.enabled: one ServiceMonitor per service; each selects exactly one Service
    of that component, on a port that targets the container port serving /metrics."""
    docs = render(**{"serviceMonitor.enabled": "true", "serviceMonitor.labels.release": "kps"})
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    services = [d for d in docs if d["kind"] == "Service"]
    pods = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in deployments(docs)
    }
    metrics_port = {"gateway": 9090, "auth": 8081, "notifier": 8082, "operator": 8084}
    assert sorted(m["metadata"]["name"] for m in monitors) == [
        f"t-tollgate-{c}" for c in sorted(metrics_port)
    ]
    for m in monitors:
        assert m["metadata"]["labels"]["release"] == "kps"
        want = m["spec"]["selector"]["matchLabels"]
        [svc] = [s for s in services if want.items() <= s["metadata"]["labels"].items()]
        [endpoint] = m["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        [port] = [p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"]]
        component = want["app.kubernetes.io/component"]
        [container] = pods[component]["spec"]["template"]["spec"]["containers"]
        by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert by_name[port["targetPort"]] == metrics_port[component], component


def test_dashboards_ship_in_the_configmap() -> None:
    """Both dashboards (overview and credits) are in the Grafana sidecar's ConfigMap."""
    import json

    [cm] = [
        d for d in render() if d["kind"] == "ConfigMap" and "dashboards" in d["metadata"]["name"]
    ]
    titles = {k: json.loads(v)["title"] for k, v in cm["data"].items()}
    assert titles == {"tollgate.json": "Tollgate", "tollgate-credits.json": "Tollgate credits"}


def test_pod_checksums_do_not_move_with_generated_secrets() -> None:
    """Two renders draw different generated passwords (as an install and the first upgrade do,
    before and after lookup finds the Secret); the pods must not see that as a change, or the
    first upgrade restarts Redis under its clients."""

    def checksums() -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "checksum/secret"
            ]
            for d in render()
            if d["kind"] == "Deployment"
            and "checksum/secret" in d["spec"]["template"]["metadata"].get("annotations", {})
        }

    first, second = checksums(), checksums()
    assert set(first) == {"t-tollgate-redis", "t-tollgate-auth"}
    assert first == second
    changed = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
        for d in render(**{"auth.existingSecret": "mine"})
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "t-tollgate-auth"
    }
    assert changed["t-tollgate-auth"] != first["t-tollgate-auth"]


def test_redis_persistence_claims_a_volume_kept_on_uninstall() -> None:
    docs = render(**{"redis.persistence.enabled": "true", "redis.persistence.storageClass": "fast"})
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["storageClassName"] == "fast"
    redis = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "t-tollgate-redis"
    )
    volumes = redis["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "data", "persistentVolumeClaim": {"claimName": "t-tollgate-redis"}}]
    assert not any(d["kind"] == "PersistentVolumeClaim" for d in render())


def test_tracing_values_reach_all_four_deployments() -> None:
    """tracing.otlpEndpoint turns on the standard OTEL_* variables in every deployment, each
    with its own service name; without it none is set (tracing off)."""
    for d in deployments(render()):
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert not [e for e in c.get("env", []) if e["name"].startswith("OTEL_")]
    docs = render(
        **{
            "tracing.otlpEndpoint": "http://collector:4317",
            "tracing.protocol": "grpc",
            "tracing.samplerArg": "0.05",
        }
    )
    names = set()
    for d in deployments(docs):
        containers = d["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for c in containers for e in c.get("env", [])}
        if "OTEL_SERVICE_NAME" not in env:
            continue
        names.add(env["OTEL_SERVICE_NAME"])
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4317"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.05"
    assert names == {f"tollgate-{s}" for s in ("gateway", "auth", "notifier", "operator")}
