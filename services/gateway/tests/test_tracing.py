"""The gateway's attempt spans over the real staggered race: a race's loser ends cancelled, a
hedge is marked, a breaker skip is an event; an upstream's credentials never reach a span."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tollgate_common.contracts.routes import Route
from tollgate_common.http.exchange import Incoming, Reply
from tollgate_common.served import SERVED
from tollgate_common.tracing import HeadSampler, PreparedIds, sampler_from_env
from tollgate_gateway.client import UpstreamResponse
from tollgate_gateway.outcome import Verdict
from tollgate_gateway.request import served_request_id
from tollgate_gateway.strategies import Attempt, staggered
from tollgate_gateway.tracing import Attempts, GatewayTracing, endpoint
from tollgate_gateway.upstreams import CompiledRoute, Upstream, compile_route


def compiled(**spec: object) -> CompiledRoute:
    urls = [f"http://127.0.0.1:{9000 + i}" for i in range(2)]
    body = {"pathPrefix": "/x", "endpoints": [{"url": u} for u in urls], **spec}
    return compile_route(Route.model_validate({"name": "ns/x", "spec": body}))


def traced() -> tuple[GatewayTracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return GatewayTracing(provider.get_tracer("t")), exporter


def by_port(spans: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {int((s.attributes or {})["server.port"]): s for s in spans}  # type: ignore[arg-type]


def run_race(c: CompiledRoute, delay: float, slow_seconds: float) -> InMemorySpanExporter:
    """The first endpoint answers after ``slow_seconds``, the second at once."""
    tr, exporter = traced()
    spans = Attempts(tr.spans, c, "GET")

    async def answer(up: Upstream) -> Attempt:
        await asyncio.sleep(slow_seconds if up is c.upstreams[0] else 0)
        return Attempt(up, Verdict.GOOD, UpstreamResponse(200, [], b"{}"), "HTTP 200")

    def send(up: Upstream) -> asyncio.Future[Attempt]:
        return asyncio.ensure_future(spans.run(up, answer(up)))

    async def main() -> None:
        won, _ = await staggered(c.upstreams, send, delay)
        assert won is not None
        assert won.upstream is c.upstreams[1]
        await asyncio.sleep(0)  # the loser's cancellation runs

    asyncio.run(main())
    return exporter


def test_race_loser_ends_cancelled() -> None:
    """race: both attempts get a span; the slow one ends cancelled with an error status."""
    spans = by_port(run_race(compiled(strategy="race"), 0.0, 5.0).get_finished_spans())
    loser, winner = spans[9000], spans[9001]
    assert (loser.attributes or {})["tollgate.attempt.cancelled"] is True
    assert loser.status.status_code is StatusCode.ERROR
    assert "tollgate.attempt.cancelled" not in (winner.attributes or {})
    assert (winner.attributes or {})["tollgate.attempt.verdict"] == "good"
    assert not (winner.attributes or {})["tollgate.attempt.hedge"]


def test_hedge_is_marked() -> None:
    """roundRobin with a hedge delay: the attempt started while the first still runs is the
    hedge; the first is not."""
    c = compiled(strategy="roundRobin", hedgeDelaySeconds=0.01)
    spans = by_port(run_race(c, 0.01, 5.0).get_finished_spans())
    assert not (spans[9000].attributes or {})["tollgate.attempt.hedge"]
    assert (spans[9001].attributes or {})["tollgate.attempt.hedge"] is True


def test_breaker_skip_is_an_event() -> None:
    """An attempt the breaker skipped (another request holds the probe) is marked so, with an
    event, not reported as an upstream failure of its own making."""
    c = compiled(strategy="failover")
    tr, exporter = traced()
    up = c.upstreams[0]

    async def skipped() -> Attempt:
        return Attempt(up, Verdict.FAIL, None, "ejected (its probe is in flight)")

    asyncio.run(Attempts(tr.spans, c, "GET").run(up, skipped()))
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})["tollgate.attempt.skipped"] is True
    assert [e.name for e in span.events] == ["breaker skip"]


def test_endpoint_drops_credentials() -> None:
    """An endpoint URL's user:password never reaches a span attribute."""
    assert endpoint("http://user:pw@up.example:81") == ("up.example", 81, "http://up.example:81")
    assert endpoint("https://up.example") == ("up.example", 443, "https://up.example:443")


def _incoming(headers: list[tuple[bytes, bytes]]) -> Incoming:
    async def body(_n: int) -> bytes:
        return b""

    async def gone() -> None:
        return None

    return Incoming("GET", "/x", b"/x", b"", headers, "127.0.0.1", "http", body, gone)


@pytest.mark.parametrize("ratio", ["0", "1"])
def test_the_proxy_answers_with_the_id_the_server_span_made(ratio: str) -> None:
    """Tracing on, sampled or not: the id the server span made (and its log lines carry) is the
    one the proxy takes for the answer and the upstream, made once; a usable id the client sent
    is kept; untraced, the proxy makes its own."""
    sampler, bound = sampler_from_env(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": ratio}
    )
    assert bound is not None
    ids = PreparedIds()
    provider = TracerProvider(sampler=sampler, id_generator=ids)
    tr = GatewayTracing(provider.get_tracer("t"), HeadSampler(bound, ids))
    seen: list[tuple[bytes, bytes, bytes]] = []

    async def handler(req: Incoming) -> Reply:
        first, again = served_request_id(req.headers), served_request_id(req.headers)
        seen.append((SERVED.get()[0], first, again))
        return Reply(200, [], b"")

    traced = tr.server(handler)

    async def serve(headers: list[tuple[bytes, bytes]]) -> None:
        await asyncio.create_task(traced(_incoming(headers)))  # type: ignore[arg-type]

    asyncio.run(serve([]))
    asyncio.run(serve([(b"x-request-id", b"client-id-1")]))
    made, sent = seen
    assert made[0]
    assert made[0] == made[1] == made[2]
    assert sent == (b"client-id-1",) * 3
    assert served_request_id([]) != served_request_id([])  # untraced: a new id each request
