"""Stale-if-error (RFC 5861, issue 13): real upstreams that die after a first good answer, two
real gateway processes, real auth processes and a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tollgate_common.contracts.events import STREAM_KEY, Event, EventType
from tollgate_testkit.provider import Provider
from tollgate_testkit.upstreams import DemoUpstream

from .conftest import Stack, open_stack

TTL = 1  # seconds an entry is fresh; the tests wait it out (a wait, never an assertion)


def backend(name: str, url: str, **cache: object) -> str:
    extra = "".join(f", {k}: {str(v).lower()}" for k, v in cache.items())
    return f"""
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: {name}, namespace: default}}
spec:
  pathPrefix: /{name}
  endpoints: [{{url: "{url}"}}]
  timeoutSeconds: 1
  creditCost: 2
  cache: {{ttlSeconds: {TTL}{extra}}}
---"""


NAMES = ("charged", "refunded", "hang", "plain")


@pytest.fixture(scope="module", params=["http", "redis"])
def stale_stack(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    fixture_provider: Provider,
) -> Iterator[tuple[Stack, dict[str, DemoUpstream]]]:
    work = tmp_path_factory.mktemp("stale")
    ups = {n: fixture_provider.upstream(n, work) for n in NAMES}
    routes = "".join(
        [
            backend("charged", ups["charged"].url, staleIfErrorSeconds=300),
            backend("refunded", ups["refunded"].url, staleIfErrorSeconds=300, chargeStale=False),
            backend("hang", ups["hang"].url, staleIfErrorSeconds=300),
            backend("plain", ups["plain"].url),
        ]
    )
    with open_stack(work, request.param, routes, list(ups.values())) as s:
        yield s, ups


def get(stack: Stack, gw: int, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{stack.gateways[gw].url}/api/v1{path}", params={"api_key": key}, timeout=15)


def until(predicate: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def failures(stack: Stack, route: str) -> int:
    client = redis.Redis.from_url(stack.redis.url)
    try:
        events = [Event.from_fields(f) for _, f in client.xrange(STREAM_KEY)]
    finally:
        client.close()
    return sum(e.type is EventType.UPSTREAM_FAILED and e.route == route for e in events)


def first_then_dead(
    stack: Stack, up: DemoUpstream, path: str, key: str, mode: str = "error500"
) -> httpx.Response:
    """One good answer through gateway 0, then the upstream fails and the entry expires."""
    first = get(stack, 0, path, key)
    assert (first.status_code, first.headers["x-cache"]) == (200, "MISS")
    up.set(mode)
    time.sleep(TTL + 0.2)
    return first


@pytest.mark.parametrize("gw", [0, 1])
def test_a_stale_answer_when_every_upstream_fails(
    stale_stack: tuple[Stack, dict[str, DemoUpstream]], gw: int
) -> None:
    """After expiry, a failing upstream: the last good answer comes back with X-Cache: STALE
    and an Age, from the gateway that stored it (its own tier) and from the other (Redis); the
    failure still reaches the notifier's stream; the stale answer is charged (the default)."""
    stack, ups = stale_stack
    ups["charged"].set("ok")
    key_id, key = stack.new_key(100)
    path = f"/charged/S{gw}"
    before = failures(stack, "default/charged")
    first = first_then_dead(stack, ups["charged"], path, key)
    r = get(stack, gw, path, key)
    assert r.status_code == 200
    assert r.headers["x-cache"] == "STALE"
    assert int(r.headers["age"]) >= TTL
    assert r.json() == first.json()
    until(lambda: failures(stack, "default/charged") > before, "no upstream.failed event")
    time.sleep(0.5)  # a refund, were one wrongly sent, lands well within this
    assert stack.credits(key_id) == 100 - 2 - 2


def test_a_stale_answer_is_refunded_when_the_route_says_so(
    stale_stack: tuple[Stack, dict[str, DemoUpstream]],
) -> None:
    """chargeStale: false: the stale answer's credits come back through the refund path."""
    stack, ups = stale_stack
    key_id, key = stack.new_key(100)
    first_then_dead(stack, ups["refunded"], "/refunded/R", key)
    r = get(stack, 1, "/refunded/R", key)
    assert (r.status_code, r.headers["x-cache"]) == (200, "STALE")
    until(lambda: stack.credits(key_id) == 98, "the stale answer was not refunded")


def test_a_stale_answer_when_the_deadline_passes(
    stale_stack: tuple[Stack, dict[str, DemoUpstream]],
) -> None:
    """An upstream that hangs past timeoutSeconds: the stale entry instead of a 504."""
    stack, ups = stale_stack
    _, key = stack.new_key(100)
    first_then_dead(stack, ups["hang"], "/hang/H", key, mode="hang")
    r = get(stack, 0, "/hang/H", key)
    assert (r.status_code, r.headers["x-cache"]) == (200, "STALE")


def test_without_stale_if_error_a_failure_is_a_502(
    stale_stack: tuple[Stack, dict[str, DemoUpstream]],
) -> None:
    """A route that keeps no stale entries answers the failure as before, refunded."""
    stack, ups = stale_stack
    key_id, key = stack.new_key(100)
    first_then_dead(stack, ups["plain"], "/plain/P", key)
    r = get(stack, 0, "/plain/P", key)
    assert r.status_code == 502
    until(lambda: stack.credits(key_id) == 98, "the failed request was not refunded")


def test_a_stale_entry_expires_with_its_window(tmp_path: Path, fixture_provider: Provider) -> None:
    """Past staleIfErrorSeconds the entry is gone: the failure is a 502 again."""
    up = fixture_provider.upstream("short", tmp_path)
    routes = backend("short", up.url, staleIfErrorSeconds=1)
    with open_stack(tmp_path, "http", routes, [up]) as stack:
        _, key = stack.new_key(100)
        first_then_dead(stack, up, "/short/X", key)
        assert get(stack, 0, "/short/X", key).headers["x-cache"] == "STALE"
        time.sleep(1.2)
        assert get(stack, 0, "/short/X", key).status_code == 502
        assert get(stack, 1, "/short/X", key).status_code == 502
