"""The charge-cost rule: what an answer costs."""

from __future__ import annotations

from tollgate_common.contracts.routes import ApiBackendSpec
from tollgate_gateway.cache import Served
from tollgate_gateway.pricing import credit_cost


def spec(**fields: object) -> ApiBackendSpec:
    return ApiBackendSpec.model_validate(
        {"pathPrefix": "/p", "endpoints": [{"url": "http://u"}], "creditCost": 3, **fields}
    )


def test_a_miss_costs_the_route_cost() -> None:
    """An answer from an upstream is charged creditCost."""
    assert credit_cost(spec(), Served.MISS) == 3


def test_a_hit_costs_the_route_cost_by_default() -> None:
    """chargeCacheHits defaults to true."""
    assert credit_cost(spec(), Served.HIT) == 3


def test_a_hit_is_free_when_the_route_says_so() -> None:
    """chargeCacheHits: false makes a hit free, not a miss."""
    free_hits = spec(chargeCacheHits=False)
    assert credit_cost(free_hits, Served.HIT) == 0
    assert credit_cost(free_hits, Served.MISS) == 3


def test_a_stale_answer_is_charged_unless_the_route_says_not() -> None:
    """cache.chargeStale defaults to true; false makes a stale answer free."""
    assert credit_cost(spec(), Served.STALE) == 3
    assert credit_cost(spec(cache={"ttlSeconds": 5, "chargeStale": False}), Served.STALE) == 0
