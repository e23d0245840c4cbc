"""OpenTelemetry traces end to end (issue 12): requests through a real gateway, a real auth
service and real upstreams, the traces read back from a real Jaeger (all-in-one, built by
``make install``): one trace per request with the right parent/child tree, the upstream joined
through ``traceparent``, a race's cancelled loser, an incoming ``traceparent`` honoured, the trace
id in the JSON log lines, and no key anywhere in a span. The gateway exports over OTLP
http/protobuf and auth over OTLP gRPC, so both exporters are shown against the real backend."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py

from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.jaeger import Jaeger, parent_of, service_of, tags
from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.services import Service, start_auth, start_gateway

from .conftest import PEPPER, Stack

GATEWAY, AUTH = "tollgate-gateway", "tollgate-auth"


def routes(ok: Upstream, slow: Upstream) -> str:
    def one(name: str, urls: list[str], extra: str = "") -> str:
        eps = ", ".join(f'{{url: "{u}"}}' for u in urls)
        return f"""---
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {{name: {name}, namespace: default}}
spec:
  pathPrefix: /{name}
  endpoints: [{eps}]
  creditCost: 1{extra}
"""

    return (
        one("live", [ok.url])
        + one("eod", [ok.url], "\n  cache: {ttlSeconds: 60}")
        + one("racer", [ok.url, slow.url], "\n  strategy: race")
        + one("broken", ["http://127.0.0.1:1"])
    )


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    try:
        backend = Jaeger(tmp_path_factory.mktemp("jaeger"))
    except FileNotFoundError as exc:
        pytest.skip(f"no trace backend: {exc}")
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, jaeger: Jaeger) -> Iterator[Stack]:
    """Redis, two upstreams (one slow), one auth (OTLP gRPC), one gateway (OTLP HTTP, JSON
    logs), tracing every request (the default sampler)."""
    work: Path = tmp_path_factory.mktemp("traced")
    with ExitStack() as cleanup:
        redis = RedisServer(work / "redis")
        cleanup.callback(redis.stop)
        ok, slow = Upstream("ok", work), Upstream("slow", work, mode="slow")
        cleanup.callback(ok.stop)
        cleanup.callback(slow.stop)
        path = work / "routes.yaml"
        path.write_text(routes(ok, slow))
        auth = start_auth(work, redis.url, process_env=jaeger.otel_env("grpc"), KEY_PEPPER=PEPPER)
        cleanup.callback(auth.stop)
        gw = start_gateway(
            work,
            redis.url,
            process_env=jaeger.otel_env("http/protobuf"),
            ROUTES_FILE=str(path),
            AUTH_URL=auth.url,
            KEY_PEPPER=PEPPER,
            LOG_JSON="true",
        )
        cleanup.callback(gw.stop)
        ledger = start_gateway(  # AUTH_MODE=redis: the ledger's EVALSHA from the gateway
            work,
            redis.url,
            process_env=jaeger.otel_env("http/protobuf"),
            ROUTES_FILE=str(path),
            AUTH_MODE="redis",
            KEY_PEPPER=PEPPER,
        )
        cleanup.callback(ledger.stop)
        yield Stack(redis, ok, [auth], [gw, ledger], "http", [ok, slow])


def send(
    gw: Service, path: str, key: str, traceparent: str | None = None
) -> tuple[httpx.Response, str]:
    """One request with the key in the query (the form most likely to leak); returns the
    response and the trace id (ours when given, else the one the upstream saw)."""
    headers = {"traceparent": traceparent} if traceparent else {}
    r = httpx.get(f"{gw.url}/api/v1{path}", params={"api_key": key, "x": "1"}, headers=headers)
    return r, traceparent.split("-")[1] if traceparent else ""


def new_traceparent(sampled: bool = True) -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


def upstream_saw(up: Upstream, marker: str) -> dict[str, str]:
    """The headers of the last request whose target holds ``marker``."""
    for seen in reversed(up.stats()["seen"]):
        if marker in seen["target"]:
            return dict(seen["headers"])
    raise AssertionError(f"no request for {marker} reached {up.name}")


def spans_named(trace: dict[str, Any], service: str, prefix: str) -> list[dict[str, Any]]:
    return [
        s
        for s in trace["spans"]
        if service_of(trace, s) == service and s["operationName"].startswith(prefix)
    ]


def test_one_trace_across_gateway_auth_and_upstream(traced: Stack, jaeger: Jaeger) -> None:
    """A request with a sampled traceparent: the gateway's server span is its child, authorize
    and the upstream attempt are the server span's, auth's server span is authorize's, and the
    upstream got a traceparent of the same trace whose parent is the attempt span."""
    _, key = traced.new_key(100)
    tp, trace_id, client_span = new_traceparent()
    r, _ = send(traced.gateways[0], "/live/TREE1", key, tp)
    assert r.status_code == 200, r.text

    trace = jaeger.wait_trace(trace_id, {GATEWAY, AUTH}, min_spans=4)
    (server,) = spans_named(trace, GATEWAY, "GET default/live")
    (authorize,) = spans_named(trace, GATEWAY, "authorize")
    (attempt,) = spans_named(trace, GATEWAY, "GET upstream")
    (auth_server,) = spans_named(trace, AUTH, "POST /v1/authorize")
    assert parent_of(server) == client_span
    assert parent_of(authorize) == server["spanID"]
    assert parent_of(attempt) == server["spanID"]
    assert parent_of(auth_server) == authorize["spanID"]

    attrs = tags(server)
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == "default/live"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/api/v1/live/TREE1"  # without the query
    assert attrs["server.address"] == "127.0.0.1"
    assert tags(authorize)["tollgate.auth.reason"] == "ok"
    assert tags(attempt)["server.port"] == traced.upstream.port

    saw = upstream_saw(traced.upstream, "TREE1")
    _version, up_trace, up_parent, flags = saw["traceparent"].split("-")
    assert (up_trace, up_parent, flags) == (trace_id, attempt["spanID"], "01")


def test_ledger_authorize_is_a_span_of_the_gateway(traced: Stack, jaeger: Jaeger) -> None:
    """AUTH_MODE=redis: authorize is an internal span of the gateway with the ledger's Redis
    call as an event, and no auth service takes part."""
    _, key = traced.new_key(100)
    tp, trace_id, _ = new_traceparent()
    r, _ = send(traced.gateways[1], "/live/LEDGER1", key, tp)
    assert r.status_code == 200, r.text
    trace = jaeger.wait_trace(trace_id, {GATEWAY}, min_spans=3)
    (server,) = spans_named(trace, GATEWAY, "GET default/live")
    (authorize,) = spans_named(trace, GATEWAY, "authorize")
    assert parent_of(authorize) == server["spanID"]
    assert tags(authorize)["span.kind"] == "internal"
    assert tags(authorize)["tollgate.auth.reason"] == "ok"
    assert [
        f["value"] for log in authorize["logs"] for f in log["fields"] if f["key"] == "event"
    ] == ["redis EVALSHA"]
    assert {service_of(trace, s) for s in trace["spans"]} == {GATEWAY}


def test_race_loser_ends_cancelled(traced: Stack, jaeger: Jaeger) -> None:
    """A race over a fast and a slow upstream: two attempt spans, the slow one cancelled."""
    _, key = traced.new_key(100)
    tp, trace_id, _ = new_traceparent()
    r, _ = send(traced.gateways[0], "/racer/RACE1", key, tp)
    assert r.status_code == 200
    assert r.json()["server"] == "ok"

    trace = jaeger.wait_trace(trace_id, {GATEWAY}, min_spans=4)
    attempts = {tags(s)["server.port"]: s for s in spans_named(trace, GATEWAY, "GET upstream")}
    fast, slow = traced.upstreams
    assert set(attempts) == {fast.port, slow.port}
    loser = tags(attempts[slow.port])
    assert loser["tollgate.attempt.cancelled"] is True
    assert loser["otel.status_code"] == "ERROR"
    winner = tags(attempts[fast.port])
    assert "tollgate.attempt.cancelled" not in winner
    assert winner["tollgate.attempt.verdict"] == "good"


def test_cache_lookup_names_its_tier(traced: Stack, jaeger: Jaeger) -> None:
    """The first GET of a cached route misses every tier, the second hits the local one."""
    _, key = traced.new_key(100)
    tiers = []
    for _ in range(2):
        tp, trace_id, _ = new_traceparent()
        assert send(traced.gateways[0], "/eod/TIER1", key, tp)[0].status_code == 200
        trace = jaeger.wait_trace(trace_id, {GATEWAY}, min_spans=3)
        (lookup,) = spans_named(trace, GATEWAY, "cache lookup")
        tiers.append(tags(lookup)["tollgate.cache.hit_tier"])
    assert tiers == ["none", "local"]


def test_unsampled_traceparent_is_honoured(traced: Stack, jaeger: Jaeger) -> None:
    """A traceparent that says "not sampled": nothing is recorded, and the upstream still joins
    the caller's trace, unsampled (parent-based sampling)."""
    _, key = traced.new_key(100)
    tp, trace_id, _ = new_traceparent(sampled=False)
    assert send(traced.gateways[0], "/live/NOSAMPLE1", key, tp)[0].status_code == 200
    saw = upstream_saw(traced.upstream, "NOSAMPLE1")
    _, up_trace, _, flags = saw["traceparent"].split("-")
    assert (up_trace, flags) == (trace_id, "00")
    # Spans of a later sampled request have arrived, so an unsampled one would have too.
    tp2, trace2, _ = new_traceparent()
    send(traced.gateways[0], "/live/NOSAMPLE2", key, tp2)
    jaeger.wait_trace(trace2, {GATEWAY, AUTH}, min_spans=4)
    assert jaeger.trace(trace_id) is None


def test_failed_request_logs_its_trace_and_carries_it_in_the_event(
    traced: Stack, jaeger: Jaeger
) -> None:
    """A request whose upstreams all fail: its JSON log line has the trace id next to the
    request id, and the upstream.failed event carries the same trace context (the notifier
    links its delivery to it)."""
    _, key = traced.new_key(100)
    tp, trace_id, _ = new_traceparent()
    r, _ = send(traced.gateways[0], "/broken/LOG1", key, tp)
    assert r.status_code == 502
    rid = r.headers["x-request-id"]
    trace = jaeger.wait_trace(trace_id, {GATEWAY}, min_spans=3)
    (server,) = spans_named(trace, GATEWAY, "GET default/broken")
    assert tags(server)["tollgate.request_id"] == rid
    assert tags(server)["otel.status_code"] == "ERROR"

    lines = _json_lines(traced.gateways[0])
    mine = [line for line in lines if line.get("request_id") == rid]
    assert mine, "no log line of the failed request"
    assert all(line["trace_id"] == trace_id for line in mine)

    events = _events(traced, lambda f: f.get("type") == "upstream.failed")
    assert events, "no upstream.failed event"
    assert events[-1]["traceparent"].split("-")[1] == trace_id


def test_a_refund_joins_the_trace_of_the_request_that_owed_it(
    traced: Stack, jaeger: Jaeger
) -> None:
    """Every upstream of the route fails, so the charge is refunded off the response path: the
    refund is a span of the request's trace, and auth's server span of the refund RPC is its
    child (over HTTP); in AUTH_MODE=redis it is an internal span with the ledger's Redis call."""
    _, key = traced.new_key(100)
    tp, trace_id, _ = new_traceparent()
    r, _ = send(traced.gateways[0], "/broken/REFUND1", key, tp)
    assert r.status_code == 502
    trace = jaeger.wait_trace(
        trace_id, {GATEWAY, AUTH}, min_spans=5, want=("refund", "POST /v1/refund")
    )
    (authorize,) = spans_named(trace, GATEWAY, "authorize")
    (refund,) = spans_named(trace, GATEWAY, "refund")
    (auth_refund,) = spans_named(trace, AUTH, "POST /v1/refund")
    assert trace_id == refund["traceID"]
    assert parent_of(auth_refund) == refund["spanID"]
    assert tags(refund)["tollgate.charge_id"] == tags(authorize)["tollgate.charge_id"]
    assert tags(refund)["tollgate.refund.attempt"] == 1
    assert tags(refund)["span.kind"] == "client"

    tp, trace_id, _ = new_traceparent()
    r, _ = send(traced.gateways[1], "/broken/REFUND2", key, tp)
    assert r.status_code == 502
    trace = jaeger.wait_trace(trace_id, {GATEWAY}, min_spans=4, want=("refund",))
    (refund,) = spans_named(trace, GATEWAY, "refund")
    assert tags(refund)["span.kind"] == "internal"
    assert [f["value"] for log in refund["logs"] for f in log["fields"] if f["key"] == "event"] == [
        "redis EVALSHA"
    ]


def test_no_span_holds_the_key(traced: Stack, jaeger: Jaeger) -> None:
    """Keys in the query, in X-API-Key and as a bearer token: none of them in any span, tag,
    event or process of any stored trace, of either service."""
    _, key = traced.new_key(100)
    gw = traced.gateways[0]
    tp, trace_id, _ = new_traceparent()
    send(gw, "/live/KEY1", key, tp)
    httpx.get(f"{gw.url}/api/v1/eod/KEY2", headers={"x-api-key": key})
    httpx.get(f"{gw.url}/api/v1/racer/KEY3", headers={"authorization": f"Bearer {key}"})
    httpx.get(f"{gw.url}/api/v1/live/KEY4", params={"api_key": "tg_not_a_real_key_123456"})
    jaeger.wait_trace(trace_id, {GATEWAY, AUTH}, min_spans=4)
    time.sleep(0.5)  # the other requests' batches (same exporter, 100 ms schedule)
    dump = json.dumps([jaeger.traces(GATEWAY), jaeger.traces(AUTH)])
    assert "KEY2" in dump
    assert "KEY3" in dump
    assert key not in dump
    assert "tg_not_a_real_key_123456" not in dump
    assert "api_key" not in dump


def _events(stack: Stack, wanted: Callable[[dict[str, str]], bool]) -> list[dict[str, str]]:
    """The entries of the events stream ``wanted`` picks, once there are any (10 s at most)."""
    client = redis_py.Redis.from_url(stack.redis.url, decode_responses=True)
    deadline = time.monotonic() + 10
    try:
        while True:
            events = [f for _, f in client.xrange("tollgate:events") if wanted(f)]
            if events or time.monotonic() > deadline:
                return events
            time.sleep(0.1)
    finally:
        client.close()


def _json_lines(svc: Service) -> list[dict[str, Any]]:
    out = []
    for line in svc.proc.output().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


@pytest.mark.parametrize("which", [0, 1], ids=["auth-raises-it", "ledger-in-gateway"])
def test_a_credit_event_carries_the_trace_of_its_request(
    traced: Stack, jaeger: Jaeger, which: int
) -> None:
    """credits.exhausted, raised by auth (AUTH_MODE=http) or by the gateway's own ledger
    (AUTH_MODE=redis), carries the trace context of the request that spent the last credit."""
    key_id, key = traced.new_key(1)
    tp, trace_id, _ = new_traceparent()
    r, _ = send(traced.gateways[which], "/live/SPENT", key, tp)
    assert r.status_code == 200
    events = _events(
        traced, lambda f: f.get("type") == "credits.exhausted" and f.get("attr.key_id") == key_id
    )
    assert events, "no credits.exhausted event"
    assert events[-1]["traceparent"].split("-")[1] == trace_id
