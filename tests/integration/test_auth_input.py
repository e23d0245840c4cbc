"""A client's bad input is the client's error, in both auth modes: never "auth unavailable",
so never a 503 and never free service on a failOpen route (issue 11)."""

from __future__ import annotations

import httpx

from .conftest import Stack

LONG_KEY = "tg_aaaaaaaa_" + "x" * 300
LONG_PATH = "/" + "A" * 2100


def test_overlong_key_on_a_fail_open_route_is_401(stack: Stack) -> None:
    """A 300-character key on a failOpen route: 401 JSON, not served unchecked."""
    r = httpx.get(f"{stack.gateways[0].url}/api/v1/free/X", params={"api_key": LONG_KEY})
    assert r.status_code == 401
    assert r.json()["status"] is False


def test_overlong_key_is_401(stack: Stack) -> None:
    """A 300-character key on a paid route: 401 JSON, not 503."""
    r = httpx.get(f"{stack.gateways[1].url}/api/v1/live/X", params={"api_key": LONG_KEY})
    assert r.status_code == 401
    assert r.json()["status"] is False


def test_overlong_path_is_414_and_free(stack: Stack) -> None:
    """A path over 2,048 characters: 414 JSON, and nothing is charged."""
    key_id, key = stack.new_key(5)
    r = httpx.get(f"{stack.gateways[0].url}/api/v1/live{LONG_PATH}", params={"api_key": key})
    assert r.status_code == 414
    assert r.json() == {"status": False, "message": r.json()["message"]}
    assert stack.credits(key_id) == 5


def test_overlong_path_on_a_fail_open_route_is_414(stack: Stack) -> None:
    """failOpen does not turn an over-long path into free service."""
    _, key = stack.new_key(5)
    r = httpx.get(f"{stack.gateways[1].url}/api/v1/free{LONG_PATH}", params={"api_key": key})
    assert r.status_code == 414
    assert r.json()["status"] is False
