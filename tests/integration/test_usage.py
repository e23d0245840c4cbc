"""Usage records through the whole stack (both auth modes): what the gateways served, charged,
refunded and answered from the cache shows in the admin API and the CLI."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tollgate_auth.cli import run
from tollgate_testkit.receivers import wait_for
from tollgate_testkit.services import ADMIN_TOKEN

from .conftest import Stack


def usage(stack: Stack, key_id: str) -> dict[str, Any]:
    with stack.admin() as c:
        r = c.get(f"/v1/admin/keys/{key_id}/usage", params={"from": int(time.time()) - 7200})
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data


def test_served_cached_and_refunded_requests_are_counted(stack: Stack) -> None:
    """A miss, a cache hit and a failed upstream: requests, credits, hits, the refund and its 5xx
    land in the key's usage by route (its namespace/name), whichever gateway served them."""
    key_id, key = stack.new_key(20)
    a, b = (g.url for g in stack.gateways)
    assert httpx.get(f"{a}/api/v1/eod/USG", params={"api_key": key}).status_code == 200
    hit = httpx.get(f"{b}/api/v1/eod/USG", params={"api_key": key})
    assert hit.headers["x-cache"] in ("HIT", "MISS")  # the other gateway: its Redis tier hits
    assert httpx.get(f"{a}/api/v1/broken/X", params={"api_key": key}).status_code == 502
    wait_for(lambda: stack.credits(key_id) == 18, timeout=15)  # the 3 of /broken came back
    wait_for(lambda: usage(stack, key_id)["routes"].get("default/broken", {}).get("5xx") == 1, 15)
    got = usage(stack, key_id)["routes"]
    assert got["default/eod"]["requests"] == 2
    assert got["default/eod"]["charged"] == 2
    assert got["default/eod"]["hits"] == (1 if hit.headers["x-cache"] == "HIT" else 0)
    assert got["default/broken"] == {
        "requests": 1, "charged": 3, "refunded": 3, "hits": 0, "4xx": 0, "5xx": 1, "refilled": 0,
    }  # fmt: skip


def test_refusals_are_counted(stack: Stack) -> None:
    """Requests a key may not make (no credits) count as 4xx, not as requests."""
    key_id, key = stack.new_key(1)
    gw = stack.gateways[0].url
    codes = [httpx.get(f"{gw}/api/v1/live/R", params={"api_key": key}).status_code for _ in "abc"]
    assert codes == [200, 402, 402]
    got = usage(stack, key_id)["routes"]["default/live"]
    assert (got["requests"], got["charged"], got["4xx"]) == (1, 1, 2)


@pytest.mark.parametrize("by", ["hour", "route"])
def test_the_cli_prints_usage_as_csv(
    stack: Stack, by: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tollgate usage ID --by hour|route --csv`: a header and one row per bucket or route."""
    key_id, key = stack.new_key(5)
    gw = stack.gateways[0].url
    assert httpx.get(f"{gw}/api/v1/live/C", params={"api_key": key}).status_code == 200
    base = ["--url", stack.auths[0].url, "--token", ADMIN_TOKEN]
    assert run([*base, "usage", key_id, "--by", by, "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    first = "route" if by == "route" else "start"
    assert lines[0] == f"{first},requests,charged,refunded,hits,4xx,5xx,refilled"
    assert lines[1].endswith(",1,1,0,0,0,0,0")
    if by == "route":
        assert lines[1].startswith("default/live,")
    assert run([*base, "--json", "usage"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert key_id in [k["key_id"] for k in totals["keys"]]
