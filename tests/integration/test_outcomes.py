"""Every debit ends as a served answer or a refund (issue 11), against real upstreams in each
outcome: 2xx charged; a "no data" 404, a 502 and a 504 refunded; a client gone refunded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tollgate_testkit.fixtures import Upstream

from .conftest import Stack, open_stack


def route(name: str, upstream: Upstream, **spec: object) -> str:
    extra = "".join(f"\n  {k}: {v}" for k, v in spec.items())
    return f"""---
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: {name}, namespace: default}}
spec:
  pathPrefix: /{name}
  endpoints: [{{url: "{upstream.url}"}}]
  creditCost: 2{extra}
"""


@pytest.fixture(scope="module", params=["http", "redis"])
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    work: Path = tmp_path_factory.mktemp("outcomes")
    ups = {m: Upstream(m, work, mode=m) for m in ("ok", "notfound", "error500", "hang")}
    routes = "".join(
        [
            route("ok", ups["ok"]),
            route("nodata", ups["notfound"]),
            route("fail", ups["error500"]),
            route("late", ups["hang"], timeoutSeconds=0.5),
            route("hang", ups["hang"], timeoutSeconds=30),
        ]
    )
    with open_stack(work, request.param, routes, list(ups.values())) as s:
        yield s


def settles_at(stack: Stack, key_id: str, credits: int) -> None:
    deadline = time.monotonic() + 10
    while (left := stack.credits(key_id)) != credits:
        assert time.monotonic() < deadline, f"credits {left}, expected {credits}"
        time.sleep(0.05)
    time.sleep(0.3)  # a late second debit or refund would show now
    assert stack.credits(key_id) == credits


def get(stack: Stack, path: str, key: str, timeout: float = 10) -> httpx.Response:
    return httpx.get(
        f"{stack.gateways[0].url}/api/v1{path}", params={"api_key": key}, timeout=timeout
    )


def test_served_answer_is_charged(outcomes: Stack) -> None:
    """200: the route's cost is debited and stays debited."""
    key_id, key = outcomes.new_key(10)
    assert get(outcomes, "/ok/A", key).status_code == 200
    settles_at(outcomes, key_id, 8)


def test_no_data_404_is_refunded(outcomes: Stack) -> None:
    """An upstream's "no data" 404: 404 to the client, and the credits come back."""
    key_id, key = outcomes.new_key(10)
    r = get(outcomes, "/nodata/A", key)
    assert r.status_code == 404
    assert r.json() == {"status": False, "message": "no data for symbol"}
    settles_at(outcomes, key_id, 10)


def test_failed_upstream_502_is_refunded(outcomes: Stack) -> None:
    """Every upstream failed: 502, refunded."""
    key_id, key = outcomes.new_key(10)
    assert get(outcomes, "/fail/A", key).status_code == 502
    settles_at(outcomes, key_id, 10)


def test_deadline_504_is_refunded(outcomes: Stack) -> None:
    """The route's deadline passed: 504, refunded."""
    key_id, key = outcomes.new_key(10)
    assert get(outcomes, "/late/A", key).status_code == 504
    settles_at(outcomes, key_id, 10)


def test_client_gone_mid_request_is_refunded(outcomes: Stack) -> None:
    """The client hangs up while the upstream works: refunded."""
    key_id, key = outcomes.new_key(10)
    with pytest.raises(httpx.ReadTimeout):
        get(outcomes, "/hang/A", key, timeout=0.5)
    settles_at(outcomes, key_id, 10)


def test_refund_on_404_false_keeps_the_charge(tmp_path: Path) -> None:
    """``refundOn404: false``: the route's owner says a "no data" answer is worth its price."""
    up = Upstream("notfound", tmp_path, mode="notfound")
    with open_stack(tmp_path, "redis", route("keep", up, refundOn404="false"), [up]) as s:
        key_id, key = s.new_key(10)
        assert get(s, "/keep/A", key).status_code == 404
        settles_at(s, key_id, 8)
