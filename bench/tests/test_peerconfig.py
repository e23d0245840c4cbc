"""The peers' configuration files (pure: rendered, parsed back, nothing started)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from bench import peerconfig
from bench.peerconfig import CLIENT_HEADER, PREFIX, SMOKE_PREFIX, UINT32_MAX, Keys

KEYS = Keys("tg_bench-key", "tg_smoke-key")


def addresses(node: Any) -> Iterator[str]:
    """Every socket address in an Envoy config."""
    if isinstance(node, dict):
        if "socket_address" in node:
            yield node["socket_address"]["address"]
        for v in node.values():
            yield from addresses(v)
    elif isinstance(node, list):
        for v in node:
            yield from addresses(v)


def hcm(config: dict[str, Any]) -> dict[str, Any]:
    chain = config["static_resources"]["listeners"][0]["filter_chains"][0]
    return dict(chain["filters"][0]["typed_config"])


def test_envoy_plain_is_only_the_router() -> None:
    """Plain Envoy proxies /api/v1/ to the upstream with /api/v1 cut off, and runs no filter
    but the router."""
    d = json.loads(peerconfig.envoy(8000, 8001, 9000))
    h = hcm(d)
    assert [f["name"] for f in h["http_filters"]] == ["envoy.filters.http.router"]
    route = h["route_config"]["virtual_hosts"][0]["routes"][0]
    assert route["match"] == {"prefix": PREFIX}
    assert route["route"] == {"cluster": "upstream", "prefix_rewrite": "/"}
    assert [c["name"] for c in d["static_resources"]["clusters"]] == ["upstream"]


def test_envoy_listens_and_calls_only_loopback() -> None:
    """Listener, admin and every cluster are on 127.0.0.1."""
    d = json.loads(peerconfig.envoy(8000, 8001, 9000, KEYS, 9100))
    assert set(addresses(d)) == {"127.0.0.1"}
    assert d["admin"]["address"]["socket_address"]["port_value"] == 8001


def test_envoy_metered_checks_the_key_then_the_limit() -> None:
    """api_key_auth (the key from ?api_key=, the client forwarded in a header) runs before the
    global ratelimit filter, which refuses when its service does not answer."""
    h = hcm(json.loads(peerconfig.envoy(8000, 8001, 9000, KEYS, 9100)))
    names = [f["name"] for f in h["http_filters"]]
    assert names == [
        "envoy.filters.http.api_key_auth",
        "envoy.filters.http.ratelimit",
        "envoy.filters.http.router",
    ]
    auth = h["http_filters"][0]["typed_config"]
    assert auth["key_sources"] == [{"query": "api_key"}]
    assert auth["credentials"] == [
        {"key": KEYS.bench, "client": "bench"},
        {"key": KEYS.smoke, "client": "smoke"},
    ]
    assert auth["forwarding"] == {"header": CLIENT_HEADER}
    rl = h["http_filters"][1]["typed_config"]
    assert (rl["domain"], rl["failure_mode_deny"]) == ("bench", True)


def test_envoy_metered_asks_for_a_rate_and_a_quota_per_client() -> None:
    """Each request carries two descriptors, (client, rate) and (client, quota), and the
    ratelimit service is reached over HTTP/2 (gRPC)."""
    d = json.loads(peerconfig.envoy(8000, 8001, 9000, KEYS, 9100))
    route = hcm(d)["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    descriptors = [
        (a["actions"][0]["request_headers"]["header_name"], a["actions"][1]["generic_key"])
        for a in route["rate_limits"]
    ]
    assert descriptors == [
        (CLIENT_HEADER, {"descriptor_value": "rate"}),
        (CLIENT_HEADER, {"descriptor_value": "quota"}),
    ]
    rl = d["static_resources"]["clusters"][1]
    assert rl["name"] == "ratelimit"
    assert "http2_protocol_options" in json.dumps(rl)


def test_ratelimit_rules_never_bite_the_bench_client_and_stop_the_smoke_one() -> None:
    """The bench client's rate and quota are the counter's ceiling; the smoke client's are 1."""
    d = json.loads(peerconfig.ratelimit_rules())
    assert d["domain"] == "bench"
    limits = {
        (c["value"], sub["value"]): sub["rate_limit"]
        for c in d["descriptors"]
        for sub in c["descriptors"]
    }
    assert limits == {
        ("bench", "rate"): {"unit": "second", "requests_per_unit": UINT32_MAX},
        ("bench", "quota"): {"unit": "day", "requests_per_unit": UINT32_MAX},
        ("smoke", "rate"): {"unit": "second", "requests_per_unit": 1},
        ("smoke", "quota"): {"unit": "day", "requests_per_unit": 1},
    }


def test_ratelimit_env_binds_loopback_and_uses_the_bench_redis() -> None:
    """Every listener of the ratelimit service is on 127.0.0.1; Redis is the bench's."""
    env = peerconfig.ratelimit_env("/r", 6400, 1, 2, 3)
    assert {env[k] for k in ("HOST", "GRPC_HOST", "DEBUG_HOST")} == {"127.0.0.1"}
    assert (env["REDIS_URL"], env["GRPC_PORT"], env["USE_STATSD"]) == (
        "127.0.0.1:6400",
        "2",
        "false",
    )


def test_traefik_metered_authenticates_then_limits_in_redis() -> None:
    """Both routers run forwardAuth, then a Redis-backed rateLimit keyed by the client header
    the auth endpoint returns, then the prefix strip; the smoke router's limit is 1 a day."""
    d = json.loads(peerconfig.traefik_metered(9000, 9001, 6400))["http"]
    assert d["routers"]["api"]["middlewares"] == ["auth", "limit", "strip-limit"]
    assert d["routers"]["smoke"]["middlewares"] == ["auth", "smoke", "strip-smoke"]
    assert d["routers"]["smoke"]["rule"] == f"PathPrefix(`{SMOKE_PREFIX}`)"
    fwd = d["middlewares"]["auth"]["forwardAuth"]
    assert fwd == {"address": "http://127.0.0.1:9001/auth", "authResponseHeaders": [CLIENT_HEADER]}
    for name in ("limit", "smoke"):
        rl = d["middlewares"][name]["rateLimit"]
        assert rl["redis"] == {"endpoints": ["127.0.0.1:6400"]}
        assert rl["sourceCriterion"] == {"requestHeaderName": CLIENT_HEADER}
    smoke = d["middlewares"]["smoke"]["rateLimit"]
    assert (smoke["average"], smoke["period"], smoke["burst"]) == (1, "24h", 1)
    assert d["middlewares"]["limit"]["rateLimit"]["burst"] >= 10**9


def test_auth_endpoint_maps_both_keys_and_refuses_the_rest() -> None:
    """nginx answers 200 with the client header for the two keys, 401 for anything else."""
    body = peerconfig.auth_endpoint(KEYS)
    assert f'"~[?&]api_key={KEYS.bench}(&|$)" bench;' in body
    assert f'"~[?&]api_key={KEYS.smoke}(&|$)" smoke;' in body
    assert 'default "";' in body
    assert 'if ($client = "") { return 401; }' in body
    assert f"add_header {CLIENT_HEADER} $client always;" in body
    assert "listen 127.0.0.1:PORT;" in body


def test_krakend_plain_passes_the_answer_through() -> None:
    """One backend host, no-op encoding both ways, one call per request."""
    d = json.loads(peerconfig.krakend(8080, [9000]))
    (ep,) = d["endpoints"]
    assert (d["version"], d["port"]) == (2, 8080)
    assert (ep["endpoint"], ep["output_encoding"], ep["concurrent_calls"]) == (
        "/api/v1/eod/{code}",
        "no-op",
        1,
    )
    assert ep["backend"] == [
        {"host": ["http://127.0.0.1:9000"], "url_pattern": "/eod/{code}", "encoding": "no-op"}
    ]


def test_krakend_race_calls_two_hosts_at_once() -> None:
    """The race row: two hosts, two concurrent calls, the first answer wins (decoded: Lura
    cannot race a no-op answer)."""
    (ep,) = json.loads(peerconfig.krakend(8080, [9000, 9001], 2))["endpoints"]
    assert (ep["concurrent_calls"], ep["output_encoding"], ep["backend"][0]["encoding"]) == (
        2,
        "json",
        "json",
    )
    assert ep["backend"][0]["host"] == ["http://127.0.0.1:9000", "http://127.0.0.1:9001"]
