"""The demo upstream's fault modes do what the gateway tests rely on."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tollgate_testkit.fixtures import Upstream

Factory = Callable[..., Upstream]


def test_serves_eod_data(upstream_factory: Factory) -> None:
    """A symbol gets a deterministic bar with status true."""
    up = upstream_factory("a")
    body = httpx.get(f"{up.url}/eod/AAPL").json()
    assert body["status"] is True
    assert body["data"]["code"] == "AAPL"
    assert body == httpx.get(f"{up.url}/eod/AAPL").json()


def test_records_what_it_saw(upstream_factory: Factory) -> None:
    """The control endpoint reports the targets and headers that reached it."""
    up = upstream_factory("a")
    httpx.get(f"{up.url}/eod/MSFT?x=1", headers={"X-Probe": "yes"})
    [seen] = up.stats()["seen"]
    assert seen["target"] == "/eod/MSFT?x=1"
    assert seen["headers"]["x-probe"] == "yes"


@pytest.mark.parametrize(
    ("mode", "status", "json_status"),
    [("error500", 500, False), ("statusfalse", 200, False), ("chunked", 200, True)],
)
def test_answer_modes(upstream_factory: Factory, mode: str, status: int, json_status: bool) -> None:
    """Each answer mode returns the documented status and body."""
    up = upstream_factory("a", mode=mode)
    r = httpx.get(f"{up.url}/eod/X")
    assert r.status_code == status
    assert r.json()["status"] is json_status


def test_badjson_is_not_json(upstream_factory: Factory) -> None:
    """badjson answers 200 with a body no JSON parser accepts."""
    up = upstream_factory("a", mode="badjson")
    r = httpx.get(f"{up.url}/eod/X")
    with pytest.raises(ValueError):  # noqa: PT011 - json's decode error is a ValueError
        r.json()


def test_reset_breaks_the_connection(upstream_factory: Factory) -> None:
    """reset aborts the connection without an answer."""
    up = upstream_factory("a", mode="reset")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{up.url}/eod/X")


def test_hang_never_answers(upstream_factory: Factory) -> None:
    """hang accepts the request and never answers."""
    up = upstream_factory("a", mode="hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{up.url}/eod/X", timeout=0.3)


def test_switching_modes_answers_in_one_line(upstream_factory: Factory) -> None:
    """POST /_control answers with the mode and counters only; GET still lists what was seen."""
    up = upstream_factory("a")
    for _ in range(60):
        httpx.get(f"{up.url}/eod/AAPL", headers={"X-Padding": "p" * 100})
    r = httpx.post(f"{up.url}/_control", content=b'{"mode": "error500"}')
    assert r.json() == {"name": "a", "mode": "error500", "delay": 0.0, "requests": 60}
    assert len(up.stats()["seen"]) == 50
