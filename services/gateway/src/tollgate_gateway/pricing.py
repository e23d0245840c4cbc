"""What an answer costs in credits (pure): the one place the charge-cost rule lives."""

from __future__ import annotations

from tollgate_common.contracts.routes import ApiBackendSpec
from tollgate_gateway.cache import Served


def credit_cost(spec: ApiBackendSpec, served: Served) -> int:
    """The credits a request of this route is charged for an answer served from ``served``:
    the route's cost, or nothing for a cache hit on a route that does not charge hits, or for
    a stale answer on a route that does not charge those (``cache.chargeStale``)."""
    if served is Served.HIT and not spec.charge_cache_hits:
        return 0
    if served is Served.STALE and not spec.cache.charge_stale:
        return 0
    return spec.credit_cost
