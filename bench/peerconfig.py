"""The peers' configuration files, rendered from ports and keys (pure: nothing is started).

Every metered peer is set up the way Tollgate's bench key is: the timed key's limits are counted
on every request and never bite; a second key (the smoke key) has a limit of one request, so the
smoke check before the timed run sees a 429 from the same code path. JSON is valid YAML, so the
YAML files Envoy and the ratelimit service read are written with ``json.dumps``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PREFIX = "/api/v1/"  # every proxy row strips it and passes /eod/AAPL on, as nginx and Traefik do
CLIENT_HEADER = "x-client-id"  # the authenticated client, set by the auth step, read by the limit
# envoyproxy/ratelimit counts in uint32: the largest limit it can be given.
UINT32_MAX = 4_294_967_295


@dataclass(frozen=True)
class Keys:
    """The API keys the metered peers accept: one for the timed run, one for the 429 smoke."""

    bench: str
    smoke: str


def envoy(
    port: int, admin: int, upstream: int, keys: Keys | None = None, ratelimit: int = 0
) -> str:
    """Envoy's bootstrap: one listener on loopback proxying /api/v1/* to the upstream; with keys,
    the ``api_key_auth`` filter (the key in ``?api_key=``, the client forwarded in a header) and the
    global ``ratelimit`` filter asking envoyproxy/ratelimit over gRPC for a rate and a quota
    descriptor of that client. ``failure_mode_deny``: a ratelimit service that does not answer
    refuses the request, as Tollgate does when its ledger is down."""
    route: dict[str, Any] = {
        "match": {"prefix": PREFIX},
        "route": {"cluster": "upstream", "prefix_rewrite": "/"},
    }
    filters: list[dict[str, Any]] = []
    clusters = [_cluster("upstream", upstream)]
    if keys is not None:
        route["route"]["rate_limits"] = [
            {"actions": [_client_action(), {"generic_key": {"descriptor_value": kind}}]}
            for kind in ("rate", "quota")
        ]
        filters += [
            {
                "name": "envoy.filters.http.api_key_auth",
                "typed_config": {
                    "@type": "type.googleapis.com/"
                    "envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
                    "credentials": [
                        {"key": keys.bench, "client": "bench"},
                        {"key": keys.smoke, "client": "smoke"},
                    ],
                    "key_sources": [{"query": "api_key"}],
                    "forwarding": {"header": CLIENT_HEADER},
                },
            },
            {
                "name": "envoy.filters.http.ratelimit",
                "typed_config": {
                    "@type": "type.googleapis.com/"
                    "envoy.extensions.filters.http.ratelimit.v3.RateLimit",
                    "domain": "bench",
                    "failure_mode_deny": True,
                    "timeout": "1s",
                    "rate_limit_service": {
                        "transport_api_version": "V3",
                        "grpc_service": {"envoy_grpc": {"cluster_name": "ratelimit"}},
                    },
                },
            },
        ]
        clusters.append(_cluster("ratelimit", ratelimit, http2=True))
    filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
            },
        }
    )
    hcm = {
        "@type": "type.googleapis.com/"
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench",
        "codec_type": "HTTP1",
        "route_config": {
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}],
        },
        "http_filters": filters,
    }
    config = {
        "admin": {"address": _address(admin)},
        "static_resources": {
            "listeners": [
                {
                    "name": "web",
                    "address": _address(port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }
    return json.dumps(config, indent=1)


def _client_action() -> dict[str, Any]:
    return {"request_headers": {"header_name": CLIENT_HEADER, "descriptor_key": "client"}}


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _cluster(name: str, port: int, http2: bool = False) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
    }
    if http2:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return c


def ratelimit_rules() -> str:
    """envoyproxy/ratelimit's config for domain ``bench``: per client a rate (per second) and a
    quota (per day) descriptor. The bench client's both sit at the counter's ceiling, so every
    request is counted in Redis and none is refused; the smoke client may make one request a day."""

    def client(name: str, rate: int, quota: int) -> dict[str, Any]:
        return {
            "key": "client",
            "value": name,
            "descriptors": [
                {
                    "key": "generic_key",
                    "value": "rate",
                    "rate_limit": {"unit": "second", "requests_per_unit": rate},
                },
                {
                    "key": "generic_key",
                    "value": "quota",
                    "rate_limit": {"unit": "day", "requests_per_unit": quota},
                },
            ],
        }

    rules = {
        "domain": "bench",
        "descriptors": [client("bench", UINT32_MAX, UINT32_MAX), client("smoke", 1, 1)],
    }
    return json.dumps(rules, indent=1)


def ratelimit_env(root: str, redis_port: int, http: int, grpc: int, debug: int) -> dict[str, str]:
    """envoyproxy/ratelimit's settings (it reads only the environment): every listener on
    loopback, the bench's Redis, no statsd, the rules from ``root``/ratelimit/config."""
    return {
        "HOST": "127.0.0.1",
        "PORT": str(http),
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc),
        "DEBUG_HOST": "127.0.0.1",
        "DEBUG_PORT": str(debug),
        "USE_STATSD": "false",
        "LOG_LEVEL": "warn",
        "REDIS_SOCKET_TYPE": "tcp",
        "REDIS_URL": f"127.0.0.1:{redis_port}",
        "RUNTIME_ROOT": root,
        "RUNTIME_SUBDIRECTORY": "ratelimit",
        "RUNTIME_WATCH_ROOT": "false",
        "RUNTIME_IGNOREDOTFILES": "true",
        "GOMAXPROCS": "1",
    }


# Traefik's rateLimit takes one rate for every source: the smoke key gets its own router (a path
# of its own) with the same forwardAuth and a Redis-backed limit of one request a day.
SMOKE_PREFIX = "/smoke/v1/"


def traefik_metered(upstream: int, auth: int, redis_port: int) -> str:
    """Traefik's dynamic config: forwardAuth to the auth endpoint (the client comes back in a
    header), then rateLimit with its Redis store keyed by that header, then the proxy."""

    def limit(average: int, period: str, burst: int) -> dict[str, Any]:
        return {
            "rateLimit": {
                "average": average,
                "period": period,
                "burst": burst,
                "sourceCriterion": {"requestHeaderName": CLIENT_HEADER},
                "redis": {"endpoints": [f"127.0.0.1:{redis_port}"]},
            }
        }

    def router(prefix: str, limiter: str) -> dict[str, Any]:
        return {
            "rule": f"PathPrefix(`{prefix}`)",
            "service": "up",
            "middlewares": ["auth", limiter, f"strip-{limiter}"],
            "entryPoints": ["web"],
        }

    d = {
        "http": {
            "routers": {"api": router(PREFIX, "limit"), "smoke": router(SMOKE_PREFIX, "smoke")},
            "middlewares": {
                "auth": {
                    "forwardAuth": {
                        "address": f"http://127.0.0.1:{auth}/auth",
                        "authResponseHeaders": [CLIENT_HEADER],
                    }
                },
                # Never bites at bench rates; every request still takes its token from Redis.
                "limit": limit(10**9, "1s", 10**9),
                "smoke": limit(1, "24h", 1),
                "strip-limit": {"stripPrefix": {"prefixes": [PREFIX.rstrip("/")]}},
                "strip-smoke": {"stripPrefix": {"prefixes": [SMOKE_PREFIX.rstrip("/")]}},
            },
            "services": {
                "up": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{upstream}"}]}}
            },
        }
    }
    return json.dumps(d, indent=1)


def auth_endpoint(keys: Keys) -> str:
    """nginx's ``http`` body for the forwardAuth endpoint: a map from the ``api_key`` in the
    original URI (Traefik sends it as X-Forwarded-Uri) to a client name, 200 with the client in a
    header for a known key, 401 otherwise. No body, no upstream, no log: as fast as an external
    auth step gets."""
    return f"""
  map $http_x_forwarded_uri $client {{
    default "";
    "~[?&]api_key={keys.bench}(&|$)" bench;
    "~[?&]api_key={keys.smoke}(&|$)" smoke;
  }}
  server {{ listen 127.0.0.1:PORT;
    location = /auth {{
      if ($client = "") {{ return 401; }}
      add_header {CLIENT_HEADER} $client always;
      return 200;
    }} }}"""


def krakend(port: int, upstreams: list[int], concurrent: int = 1) -> str:
    """KrakenD CE 1.4's config (version 2): /api/v1/eod/{code} to /eod/{code} on the upstream
    hosts. One call per request (the plain row): the no-op encoding, the answer passed through as
    is, like every other proxy row. ``concurrent`` > 1 is the race: that many calls at once to the
    hosts, the first good answer wins; Lura races only decoded answers (with no-op the losing
    call's cancellation cuts the winner's body), so the race row decodes and re-encodes JSON."""
    encoding = "no-op" if concurrent == 1 else "json"
    backend = {
        "host": [f"http://127.0.0.1:{p}" for p in upstreams],
        "url_pattern": "/eod/{code}",
        "encoding": encoding,
    }
    endpoint = {
        "endpoint": "/api/v1/eod/{code}",
        "method": "GET",
        "output_encoding": encoding,
        "concurrent_calls": concurrent,
        "backend": [backend],
    }
    d = {
        "version": 2,
        "name": "bench",
        "port": port,
        "timeout": "3s",
        "extra_config": {
            "github_com/devopsfaith/krakend-gologging": {
                "level": "ERROR",
                "prefix": "[KRAKEND]",
                "syslog": False,
                "stdout": True,
            }
        },
        "endpoints": [endpoint],
    }
    return json.dumps(d, indent=1)
