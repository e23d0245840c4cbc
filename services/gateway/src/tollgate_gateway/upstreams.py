"""A route compiled for serving: its upstream endpoints with their live state."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tollgate_common.contracts.routes import Route
from tollgate_common.types import Headers
from tollgate_gateway.breaker import Breaker


@dataclass(slots=True, eq=False)
class Upstream:
    url: str
    origin: str  # scheme://host:port, the connection pool's key
    base: str  # path prefix of the endpoint URL, prepended to the request path
    weight: int
    breaker: Breaker
    inflight: int = 0
    score: int = 0  # smooth weighted round robin state


@dataclass(slots=True, eq=False)
class CompiledRoute:
    route: Route
    upstreams: list[Upstream]
    extra_headers: Headers
    counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def name(self) -> str:
        return self.route.name


def compile_route(route: Route, previous: CompiledRoute | None = None) -> CompiledRoute:
    """Build serving state; endpoints unchanged since ``previous`` keep their breaker state."""
    spec = route.spec
    old = {u.url: u for u in previous.upstreams} if previous else {}
    ups = []
    for ep in route.url_endpoints:
        url = ep.url or ""
        kept = old.get(url)
        if kept is not None:
            kept.weight = ep.weight
            kept.breaker.failure_threshold = spec.circuit_breaker.failure_threshold
            kept.breaker.eject_seconds = spec.circuit_breaker.eject_seconds
            ups.append(kept)
            continue
        parts = urlsplit(url)
        breaker = Breaker(
            spec.circuit_breaker.failure_threshold, spec.circuit_breaker.eject_seconds
        )
        ups.append(
            Upstream(
                url, f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/"), ep.weight, breaker
            )
        )
    extra = [(k.lower().encode(), v.encode()) for k, v in spec.headers.items()]
    return CompiledRoute(route, ups, extra)
