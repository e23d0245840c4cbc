"""The ApiBackend spec and the route table that the operator publishes and the gateways follow.

One description of a route, used three ways: parsed from a YAML file outside Kubernetes,
validated by the operator from a custom resource, and carried in the versioned table in Redis.
The CRD's OpenAPI schema (deploy/helm/tollgate/crds) mirrors these constraints, so that
``kubectl apply`` refuses what the gateway could not serve.

Table protocol in Redis (see ``TABLE_KEY`` and ``TABLE_CHANNEL``):

- ``TABLE_KEY`` holds the JSON of :class:`RouteTable`; its ``version`` only ever grows.
- After writing it, the writer publishes the new version on ``TABLE_CHANNEL``.
- A gateway applies a table only if its version is newer than the one it has, so a late or
  repeated notification is harmless; it also polls the key, so a lost notification costs at most
  one poll interval; and it keeps its last good table while Redis is unreachable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

API_VERSION = "tollgate.dev/v1alpha1"
KIND = "ApiBackend"
TABLE_KEY = "tollgate:routes:table"
TABLE_CHANNEL = "tollgate:routes:changed"

# A path prefix is "/" or slash-separated segments of URL-safe characters, no trailing slash.
PATH_PREFIX_PATTERN = r"^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$"
URL_PATTERN = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
# A Service name is a DNS-1035 label: no dot or slash, so it cannot point into another namespace
# ("payments.prod.svc.cluster.local/") or at any host ("evil.example/").
SERVICE_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"  # an RFC 9110 token
MAX_CREDIT_COST = 1_000_000

Strategy = Literal["race", "failover", "roundRobin"]
SuccessWhen = Literal["jsonStatusTrue", "http2xx"]
Balancer = Literal["leastInflight", "weighted"]


class _Model(BaseModel):
    """camelCase on the wire (YAML, CRD, Redis), snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ServiceRef(_Model):
    """A Kubernetes Service in the resource's namespace; the operator turns it into a URL."""

    name: str = Field(min_length=1, max_length=63, pattern=SERVICE_NAME_PATTERN)
    port: int = Field(ge=1, le=65535)
    scheme: Literal["http", "https"] = "http"


class Endpoint(_Model):
    """One upstream server of a route: a URL, or (in Kubernetes) a Service reference."""

    url: Annotated[str, Field(pattern=URL_PATTERN, max_length=2048)] | None = None
    service: ServiceRef | None = None
    weight: int = Field(
        1, ge=1, le=1000, description="Share of traffic under the weighted balancer."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Endpoint:
        if (self.url is None) == (self.service is None):
            raise ValueError("an endpoint needs exactly one of url or service")
        return self


class CacheSpec(_Model):
    ttl_seconds: int = Field(0, ge=0, le=7 * 24 * 3600, description="0 turns caching off.")
    max_body_bytes: int = Field(
        1 << 20, ge=0, le=64 << 20, description="Larger responses are not cached."
    )
    stale_if_error_seconds: int = Field(
        0,
        ge=0,
        le=7 * 24 * 3600,
        description="Keep entries this long past their TTL, to serve when every upstream "
        "fails or the deadline passes (RFC 5861 stale-if-error); 0 turns it off.",
    )
    charge_stale: bool = Field(
        True, description="Charge a stale answer like any other; false refunds it."
    )


class CircuitBreakerSpec(_Model):
    failure_threshold: int = Field(5, ge=1, le=1000, description="Consecutive failures that eject.")
    eject_seconds: float = Field(
        10.0, gt=0, le=3600, description="How long before a probe is let through."
    )


class ApiBackendSpec(_Model):
    """What a route is. Field names and meanings are the ones users ``kubectl apply``."""

    path_prefix: Annotated[str, Field(pattern=PATH_PREFIX_PATTERN, max_length=256)]
    strategy: Strategy = "race"
    endpoints: list[Endpoint] = Field(min_length=1, max_length=32)
    timeout_seconds: float = Field(30.0, gt=0, le=300)
    success_when: SuccessWhen = "jsonStatusTrue"
    cache: CacheSpec = CacheSpec()
    credit_cost: int = Field(1, ge=0, le=MAX_CREDIT_COST)
    retries: int = Field(
        0, ge=0, le=10, description="failover/roundRobin: extra attempts beyond the first."
    )
    hedge_delay_seconds: float | None = Field(
        None, gt=0, le=300, description="roundRobin: send a second request after this delay."
    )
    balancer: Balancer = "leastInflight"
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra request headers sent to every upstream.",
    )
    fail_open: bool = Field(
        False, description="Serve when the auth service is unreachable (for free data)."
    )
    charge_cache_hits: bool = Field(True, description="Charge credits for cache hits too.")
    refund_on_404: bool = Field(
        True,
        description="Refund a request the upstreams had no data for (404 or status false); "
        "false: such an answer is charged like data.",
    )
    circuit_breaker: CircuitBreakerSpec = CircuitBreakerSpec()

    @field_validator("headers")
    @classmethod
    def _header_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not re.fullmatch(HEADER_NAME_PATTERN, name):
                raise ValueError(f"invalid header name {name!r}")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} has a line break in its value")
            if len(value) > 4096:
                raise ValueError(f"header {name!r} is longer than 4096 characters")
        return v

    @field_validator("endpoints")
    @classmethod
    def _no_duplicates(cls, v: list[Endpoint]) -> list[Endpoint]:
        seen: set[object] = set()
        for e in v:
            target = e.url if e.service is None else (e.service.name, e.service.port)
            if target in seen:
                raise ValueError(f"duplicate endpoint {target!r}")
            seen.add(target)
        return v


class Route(_Model):
    """One entry of the route table: an ApiBackend's identity plus its (normalized) spec."""

    name: str = Field(description="namespace/name of the ApiBackend.")
    spec: ApiBackendSpec
    created: str = Field("", description="creationTimestamp; the oldest claim of a prefix wins.")

    @property
    def url_endpoints(self) -> list[Endpoint]:
        """Endpoints that have a URL (service references are resolved by the operator)."""
        return [e for e in self.spec.endpoints if e.url is not None]


class RouteTable(_Model):
    version: int = Field(0, ge=0)
    routes: list[Route] = Field(default_factory=list)

    def dumps(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def loads(cls, data: str | bytes) -> RouteTable:
        return cls.model_validate_json(data)


# The head of a published table: the operator writes ``{"version":N,"routes":...}`` in that order.
_HEAD = re.compile(rb'\A\{"version":(\d{1,19}),')
HEAD_BYTES = 32  # enough for the head above


def version_of(head: bytes) -> int | None:
    """The version a table's first bytes announce, or None when they do not say (pure): the
    gateways read this much and parse the whole table only when it is newer than theirs."""
    m = _HEAD.match(head)
    return int(m.group(1)) if m else None


class RouteDocumentError(ValueError):
    """A route document that is not a valid ApiBackend."""


def claim_order(route: Route) -> tuple[str, str]:
    """Sort key deciding who wins a contested prefix: the oldest, then by name (deterministic)."""
    return (route.created or "~", route.name)


def resolve_conflicts(routes: Iterable[Route]) -> tuple[list[Route], dict[str, str]]:
    """Keep one route per path prefix.

    Returns the winners (sorted by name) and, for each loser, the name of the route that holds its
    prefix, so both sides can say so in their status.
    """
    winners: dict[str, Route] = {}
    losers: dict[str, str] = {}
    for route in sorted(routes, key=claim_order):
        holder = winners.get(route.spec.path_prefix)
        if holder is None:
            winners[route.spec.path_prefix] = route
        else:
            losers[route.name] = holder.name
    return sorted(winners.values(), key=lambda r: r.name), losers


def parse_documents(text: str) -> list[Route]:
    """Parse a multi-document YAML file of ApiBackend resources into routes.

    Raises RouteDocumentError naming the document that is wrong, so a bad file fails loudly at
    start-up instead of serving a partial table.
    """
    routes: list[Route] = []
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise RouteDocumentError(f"route file is not valid YAML: {exc}") from exc
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise RouteDocumentError(f"document {i} is not a mapping")
        if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
            raise RouteDocumentError(f"document {i} is not a {API_VERSION} {KIND}")
        meta = doc.get("metadata") or {}
        name = f"{meta.get('namespace', 'default')}/{meta.get('name', f'doc-{i}')}"
        try:
            spec = ApiBackendSpec.model_validate(doc.get("spec") or {})
        except ValueError as exc:
            raise RouteDocumentError(f"{name}: {exc}") from exc
        if any(e.url is None for e in spec.endpoints):
            raise RouteDocumentError(f"{name}: service endpoints need the operator; use url here")
        routes.append(Route(name=name, spec=spec, created=f"{i:08d}"))
    return routes
