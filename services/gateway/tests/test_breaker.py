"""The circuit breaker's states."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tollgate_gateway.breaker import Breaker
from tollgate_testkit.fixtures import Upstream

from .conftest import RunningGateway, route_doc

Ups = Callable[..., Upstream]
Gws = Callable[..., RunningGateway]


def test_ejects_after_threshold_and_probes_back() -> None:
    """N consecutive failures eject; after ejectSeconds one probe goes through; success closes."""
    b = Breaker(failure_threshold=3, eject_seconds=10)
    assert not b.failure(0)
    assert not b.failure(0)
    assert b.failure(0)  # third failure ejects
    assert not b.allows(5)
    assert b.allows(10)  # the probe
    assert not b.allows(10)  # only one probe at a time
    b.success()
    assert b.allows(11)
    assert b.allows(11)


def test_failed_probe_ejects_again() -> None:
    """A failing probe re-opens the breaker for another period."""
    b = Breaker(failure_threshold=1, eject_seconds=10)
    b.failure(0)
    assert b.allows(10)
    assert b.failure(10)
    assert not b.allows(15)
    assert b.allows(20)


def test_success_resets_the_count() -> None:
    """Failures must be consecutive to eject."""
    b = Breaker(failure_threshold=2, eject_seconds=10)
    b.failure(0)
    b.success()
    assert not b.failure(0)
    assert b.allows(0)


def test_cancelled_probe_frees_the_slot() -> None:
    """A probe that never finished does not keep the endpoint ejected forever."""
    b = Breaker(failure_threshold=1, eject_seconds=1)
    b.failure(0)
    assert b.allows(2)
    b.release()
    assert b.allows(2)


# --- recovery end to end: a real gateway and real upstreams ------------------------------------

FAST_BREAKER = {"failureThreshold": 1, "ejectSeconds": 1.0}


def _get(gw: RunningGateway, path: str) -> httpx.Response:
    return httpx.get(f"{gw.url}/api/v1{path}", timeout=10)


def _ejected(gw: RunningGateway) -> dict[str, bool]:
    [route] = httpx.get(f"{gw.url}/routes", timeout=5).json()["routes"]
    return {e["url"]: e["ejected"] for e in route["endpoints"]}


def _eject_both(gw: RunningGateway, a: Upstream, b: Upstream) -> None:
    """Both endpoints fail until the gateway has ejected both, then both heal."""
    a.set("error500")
    b.set("error500")
    state: dict[str, bool] = {}
    for i in range(10):
        state = _ejected(gw)
        if all(state.values()):
            break
        _get(gw, f"/eod/E{i}")
    assert all(state.values())
    a.set("ok")
    b.set("ok")


def _until(check: Callable[[int], bool], seconds: float = 10.0) -> bool:
    """Call ``check(i)`` (which may send a request) until it holds, within a bounded wait."""
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        if check(i):
            return True
        i += 1
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("strategy", ["race", "failover", "roundRobin"])
def test_healed_endpoint_is_no_longer_ejected(
    gateway_factory: Gws, upstream_factory: Ups, strategy: str
) -> None:
    """Once both endpoints heal, neither stays ejected after ejectSeconds and a probe, whichever
    endpoints the strategy sent to (a probe reserved by a plan is not kept by it)."""
    a, b = upstream_factory("a"), upstream_factory("b")
    spec = {"strategy": strategy, "circuitBreaker": FAST_BREAKER}
    gw = gateway_factory(route_doc("eod", "/eod", [a.url, b.url], **spec))
    _eject_both(gw, a, b)

    def healed(i: int) -> bool:
        assert _get(gw, f"/eod/H{i}").status_code in (200, 502)
        return not any(_ejected(gw).values())

    assert _until(healed), _ejected(gw)


def test_failover_sends_to_a_healed_second_endpoint(
    gateway_factory: Gws, upstream_factory: Ups
) -> None:
    """failover: with the first endpoint healthy the second gets no traffic; when the first fails
    again, the healed second answers instead of the request failing."""
    a, b = upstream_factory("a"), upstream_factory("b")
    spec = {"strategy": "failover", "circuitBreaker": FAST_BREAKER}
    gw = gateway_factory(route_doc("eod", "/eod", [a.url, b.url], **spec))
    _eject_both(gw, a, b)
    assert _until(lambda i: _get(gw, f"/eod/F{i}").status_code == 200)
    time.sleep(1.1)  # past b's ejectSeconds while a serves everything (no assertion on it)
    assert _get(gw, "/eod/AFTER").json()["server"] == "a"
    a.set("error500")
    r = _get(gw, "/eod/FAILOVER")
    assert r.status_code == 200
    assert r.json()["server"] == "b"


@pytest.mark.parametrize("balancer", ["leastInflight", "weighted"])
def test_round_robin_spreads_over_healed_endpoints(
    gateway_factory: Gws, upstream_factory: Ups, balancer: str
) -> None:
    """roundRobin: after both endpoints heal, both get traffic again."""
    a, b = upstream_factory("a"), upstream_factory("b")
    spec = {"strategy": "roundRobin", "balancer": balancer, "circuitBreaker": FAST_BREAKER}
    gw = gateway_factory(route_doc("eod", "/eod", [a.url, b.url], **spec))
    _eject_both(gw, a, b)
    before = {"a": a.requests, "b": b.requests}
    seen: set[str] = set()

    def both_serve(i: int) -> bool:
        r = _get(gw, f"/eod/R{i}")
        if r.status_code == 200:
            seen.add(r.json()["server"])
        return seen == {"a", "b"}

    assert _until(both_serve), (seen, before)
