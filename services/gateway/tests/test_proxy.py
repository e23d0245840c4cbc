"""The proxy path end to end: a real gateway, real redis-server, real upstream servers."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from tollgate_common.contracts.events import STREAM_KEY
from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.redis_server import RedisServer

from .conftest import RunningGateway, route_doc

Ups = Callable[..., Upstream]
Gws = Callable[..., RunningGateway]


def get(gw: RunningGateway, path: str, **kw: object) -> httpx.Response:
    return httpx.get(f"{gw.url}/api/v1{path}", timeout=10, **kw)  # type: ignore[arg-type]


def get_raw(gw: RunningGateway, target: str) -> tuple[int, dict[str, Any]]:
    """GET with the request-target exactly as given (httpx would normalize it first)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_unknown_route_is_json_404(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """A path no route claims: 404 with the JSON error shape."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("eod", "/eod", [up.url]))
    r = get(gw, "/nope/x")
    assert r.status_code == 404
    assert r.json() == {"status": False, "message": "no such route: /nope/x"}


def test_race_answers_with_the_fast_one(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """race: the fast upstream's answer comes back without waiting for the slow one."""
    fast, slow = upstream_factory("fast"), upstream_factory("slow")
    slow.set("slow", delay=5)
    gw = gateway_factory(route_doc("eod", "/eod", [slow.url, fast.url], strategy="race"))
    started = time.monotonic()
    r = get(gw, "/eod/AAPL")
    assert r.status_code == 200
    assert r.json()["server"] == "fast"
    assert time.monotonic() - started < 4  # not the slow one's 5 s: it was abandoned
    assert slow.requests == 1


def test_race_skips_status_false(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """An upstream saying status:false loses to one with data, whichever is faster."""
    empty, good = upstream_factory("empty", mode="statusfalse"), upstream_factory("good")
    good.set("ok", delay=0.2)
    gw = gateway_factory(route_doc("eod", "/eod", [empty.url, good.url]))
    assert get(gw, "/eod/AAPL").json()["server"] == "good"


@pytest.mark.parametrize("bad_mode", ["error500", "reset", "badjson"])
def test_failover_skips_a_bad_upstream(
    gateway_factory: Gws, upstream_factory: Ups, bad_mode: str
) -> None:
    """failover: the first endpoint fails, the second answers."""
    bad, good = upstream_factory("bad", mode=bad_mode), upstream_factory("good")
    gw = gateway_factory(route_doc("eod", "/eod", [bad.url, good.url], strategy="failover"))
    r = get(gw, "/eod/AAPL")
    assert r.status_code == 200
    assert r.json()["server"] == "good"
    assert bad.requests == 1


def test_failover_times_out_a_hung_upstream(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """A hung first endpoint with no time left: 504 JSON."""
    hung = upstream_factory("hung", mode="hang")
    gw = gateway_factory(
        route_doc("eod", "/eod", [hung.url], strategy="failover", timeoutSeconds=0.5)
    )
    r = get(gw, "/eod/AAPL")
    assert r.status_code == 504
    assert r.json()["status"] is False


def test_round_robin_spreads_requests(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """roundRobin: sequential requests alternate between the endpoints."""
    a, b = upstream_factory("a"), upstream_factory("b")
    gw = gateway_factory(route_doc("eod", "/eod", [a.url, b.url], strategy="roundRobin"))
    servers = [get(gw, f"/eod/S{i}").json()["server"] for i in range(10)]
    assert servers.count("a") == 5
    assert servers.count("b") == 5


def test_hedge_rescues_a_slow_endpoint(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """roundRobin with a hedge: a request stuck on a slow endpoint is answered by the other."""
    a, b = upstream_factory("a"), upstream_factory("b")
    a.set("slow", delay=5)
    gw = gateway_factory(
        route_doc("eod", "/eod", [a.url, b.url], strategy="roundRobin", hedgeDelaySeconds=0.1)
    )
    for i in range(4):
        assert get(gw, f"/eod/H{i}").json()["server"] == "b"
    assert a.requests >= 1  # some first attempts went to a and were hedged


def test_breaker_ejects_a_failing_endpoint(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """After failureThreshold failures an endpoint gets no traffic until ejectSeconds pass."""
    bad, good = upstream_factory("bad", mode="error500"), upstream_factory("good")
    spec = {"strategy": "failover", "circuitBreaker": {"failureThreshold": 2, "ejectSeconds": 30}}
    gw = gateway_factory(route_doc("eod", "/eod", [bad.url, good.url], **spec))
    for i in range(6):
        assert get(gw, f"/eod/B{i}").status_code == 200
    assert bad.requests == 2
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'tollgate_gateway_ejections_total{route="default/eod"' in metrics


def test_all_failed_is_502_and_an_event(
    gateway_factory: Gws, upstream_factory: Ups, redis_url: str
) -> None:
    """Every upstream failing: 502 JSON, and an upstream.failed event on the stream."""
    a, b = upstream_factory("a", mode="error500"), upstream_factory("b", mode="reset")
    gw = gateway_factory(route_doc("eod", "/eod", [a.url, b.url]))
    r = get(gw, "/eod/AAPL")
    assert r.status_code == 502
    assert r.json()["status"] is False
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 5
    while client.xlen(STREAM_KEY) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    [(_, fields)] = client.xrange(STREAM_KEY)
    assert fields[b"type"] == b"upstream.failed"
    assert fields[b"route"] == b"default/eod"
    a.set("ok")
    assert get(gw, "/eod/AAPL").status_code == 200
    deadline = time.monotonic() + 5
    while client.xlen(STREAM_KEY) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.xrange(STREAM_KEY)[-1][1][b"type"] == b"route.recovered"


def test_no_data_is_404(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """Upstreams that answered status:false: 404 with their message."""
    a = upstream_factory("a", mode="statusfalse")
    gw = gateway_factory(route_doc("eod", "/eod", [a.url]))
    r = get(gw, "/eod/AAPL")
    assert r.status_code == 404
    assert r.json() == {"status": False, "message": "no data for symbol"}


def test_credentials_never_reach_the_upstream(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """api_key (query), X-API-Key and Authorization stay in the gateway; other params pass."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 0}))
    get(gw, "/eod/AAPL?api_key=tg_secret&x=1", headers={"X-API-Key": "tg_secret2"})
    get(gw, "/eod/AAPL", headers={"Authorization": "Bearer tg_secret3"})
    seen = up.stats()["seen"]
    assert seen[0]["target"] == "/eod/AAPL?x=1"
    text = str(seen)
    assert "tg_secret" not in text
    assert seen[0]["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert len(seen[0]["headers"]["x-request-id"]) >= 16


def test_request_id_is_passed_through(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """A client's X-Request-ID reaches the upstream and comes back."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("eod", "/eod", [up.url]))
    r = get(gw, "/eod/AAPL", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert up.stats()["seen"][0]["headers"]["x-request-id"] == "abc-123"


def test_cache_miss_then_hit(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """The second identical request (params reordered, other key) is a HIT without upstream."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60}))
    r1 = get(gw, "/eod/AAPL?a=1&b=2&api_key=k1")
    r2 = get(gw, "/eod/AAPL?b=2&a=1&api_key=k2")
    assert r1.headers["x-cache"] == "MISS"
    assert r2.headers["x-cache"] == "HIT"
    assert r1.content == r2.content
    assert up.requests == 1


def test_cache_shared_through_redis(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """A second gateway finds the first one's entry in Redis."""
    up = upstream_factory()
    routes = route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60})
    gw1, gw2 = gateway_factory(routes), gateway_factory(routes)
    assert get(gw1, "/eod/AAPL").headers["x-cache"] == "MISS"
    deadline = time.monotonic() + 5
    while get(gw2, "/eod/AAPL").headers["x-cache"] != "HIT":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert up.requests <= 2


def test_no_store_is_not_cached(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """Cache-Control: no-store from the upstream keeps the answer out of the cache."""
    up = upstream_factory(mode="nostore")
    gw = gateway_factory(route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60}))
    assert get(gw, "/eod/AAPL").headers["x-cache"] == "MISS"
    assert get(gw, "/eod/AAPL").headers["x-cache"] == "MISS"
    assert up.requests == 2


def test_concurrent_misses_coalesce(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """Twenty concurrent misses on one key make one upstream request."""
    import concurrent.futures

    up = upstream_factory()
    up.set("slow", delay=0.5)
    gw = gateway_factory(route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60}))
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        codes = list(ex.map(lambda _: get(gw, "/eod/COAL").status_code, range(20)))
    assert codes == [200] * 20
    assert up.requests == 1


def test_redis_down_still_serves(
    gateway_factory: Gws, upstream_factory: Ups, redis_server: object
) -> None:
    """With Redis stopped, cached routes are served from the upstream (cache bypassed)."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60}))
    redis_server.stop()  # type: ignore[attr-defined]
    try:
        for i in range(3):
            r = get(gw, f"/eod/R{i}")
            assert r.status_code == 200
    finally:
        redis_server.restart()  # type: ignore[attr-defined]


def test_client_disconnect_cancels_upstream_work(
    gateway_factory: Gws, upstream_factory: Ups
) -> None:
    """A client that gives up takes its upstream request down with it: no leaked connection."""
    up = upstream_factory(mode="hang")
    gw = gateway_factory(route_doc("eod", "/eod", [up.url], timeoutSeconds=60))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{gw.url}/api/v1/eod/AAPL", timeout=0.3)
    pool = gw.gateway.proxy.p.pool
    deadline = time.monotonic() + 5
    while pool.open_connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.open_connections() == 0
    assert gw.gateway.metrics.inflight.value == 0


def test_oversized_body_is_413(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """A request body over the limit: 413 JSON, nothing sent upstream."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("eod", "/eod", [up.url]), max_request_body_bytes=100)
    r = httpx.post(f"{gw.url}/api/v1/eod/AAPL", content=b"x" * 1000)
    assert r.status_code == 413
    assert r.json()["status"] is False
    assert up.requests == 0


def test_dot_segments_are_refused(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """Path traversal attempts get 400, not forwarded."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("eod", "/eod", [up.url]))
    r = httpx.get(f"{gw.url}/api/v1/eod/%2e%2e/admin")
    assert r.status_code in (400, 404)
    assert r.json()["status"] is False
    assert up.requests == 0


def test_hung_redis_still_serves(
    gateway_factory: Gws, upstream_factory: Ups, redis_server: RedisServer
) -> None:
    """Redis frozen (SIGSTOP): the cache gives up after its bound and the upstream answers."""
    import signal

    up = upstream_factory()
    gw = gateway_factory(
        route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60}, timeoutSeconds=10)
    )
    redis_server.proc.kill(signal.SIGSTOP)
    try:
        for i in range(3):
            assert get(gw, f"/eod/HUNG{i}").status_code == 200
    finally:
        redis_server.proc.kill(signal.SIGCONT)


@pytest.mark.parametrize(
    ("target", "sent"),
    [
        ("/%61pi/v1/bi/t10", "/bi/t10"),
        ("/api/v1/%62i/t%31%30?x=1", "/bi/t10?x=1"),
        ("/api/v1/bi/a%2fb", "/bi/a%2Fb"),
    ],
)
def test_the_upstream_gets_the_path_that_was_routed(
    gateway_factory: Gws, upstream_factory: Ups, target: str, sent: str
) -> None:
    """The path is decoded once: routed and sent upstream in the same normalized form (%2F kept
    encoded, as data)."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("bi", "/bi", [up.url], cache={"ttlSeconds": 0}))
    status, _ = get_raw(gw, target)
    assert status == 200
    assert up.stats()["seen"][-1]["target"] == sent


def test_an_encoded_slash_is_not_a_separator(gateway_factory: Gws, upstream_factory: Ups) -> None:
    """/bi%2Fx is one segment: the /bi route does not claim it."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("bi", "/bi", [up.url]))
    status, body = get_raw(gw, "/api/v1/bi%2Fx")
    assert status == 404
    assert body["status"] is False
    assert up.requests == 0


@pytest.mark.parametrize(
    "target", ["/api/v1/bi/%2e%2e/admin", "/api/v1/bi/..%2Fadmin", "/api/v1/bi/%zz"]
)
def test_a_path_that_could_leave_its_prefix_is_400(
    gateway_factory: Gws, upstream_factory: Ups, target: str
) -> None:
    """Dot segments however spelt, and malformed escapes: 400 JSON, nothing sent upstream."""
    up = upstream_factory()
    gw = gateway_factory(route_doc("bi", "/bi", [up.url]))
    status, body = get_raw(gw, target)
    assert status == 400
    assert body["status"] is False
    assert up.requests == 0


def test_a_502_names_the_route_not_the_upstreams(
    gateway_factory: Gws, upstream_factory: Ups, redis_url: str
) -> None:
    """The client learns the route and how many upstreams were tried; their URLs stay in the
    failure event (and the logs)."""
    a, b = upstream_factory("a", mode="error500"), upstream_factory("b", mode="reset")
    gw = gateway_factory(route_doc("eod", "/eod", [a.url, b.url]))
    r = get(gw, "/eod/AAPL")
    assert r.status_code == 502
    message = r.json()["message"]
    assert "default/eod" in message
    assert "2 upstreams" in message
    for up in (a, b):
        assert str(up.port) not in message
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 5
    while client.xlen(STREAM_KEY) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    [(_, fields)] = client.xrange(STREAM_KEY)
    assert a.url.encode() in fields[b"message"]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_followers_are_answered_when_the_leader_hangs_up(
    gateway_factory: Gws, upstream_factory: Ups
) -> None:
    """The first client of 21 identical requests leaves: the 20 others get one upstream answer."""
    up = upstream_factory()
    up.set("slow", delay=3.0)
    gw = gateway_factory(
        route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60}, timeoutSeconds=30)
    )
    target = "/api/v1/eod/LEAD"
    leader = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    leader.request("GET", target)
    wait_for(lambda: up.requests == 1, "the leader's upstream request")
    followers = [http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30) for _ in range(20)]
    for f in followers:
        f.request("GET", target)
    wait_for(lambda: gw.gateway.metrics.inflight.value == 21, "the followers to join")
    leader.close()
    try:
        statuses = []
        for f in followers:
            resp = f.getresponse()
            statuses.append(resp.status)
            assert json.loads(resp.read())["status"] is True
    finally:
        for f in followers:
            f.close()
    assert statuses == [200] * 20
    assert up.requests == 1


def test_a_coalesced_fetch_stops_when_every_client_left(
    gateway_factory: Gws, upstream_factory: Ups
) -> None:
    """When all the clients of a coalesced fetch hang up, its upstream request goes too."""
    up = upstream_factory(mode="hang")
    gw = gateway_factory(
        route_doc("eod", "/eod", [up.url], cache={"ttlSeconds": 60}, timeoutSeconds=60)
    )
    clients = [http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30) for _ in range(3)]
    for c in clients:
        c.request("GET", "/api/v1/eod/GONE")
    wait_for(lambda: gw.gateway.metrics.inflight.value == 3, "the clients to arrive")
    for c in clients:
        c.close()
    pool = gw.gateway.proxy.p.pool
    wait_for(lambda: pool.open_connections() == 0, "the upstream connection to close")
    wait_for(lambda: len(gw.gateway.proxy.coalescer) == 0, "the key to leave the flight table")
    assert gw.gateway.metrics.inflight.value == 0
