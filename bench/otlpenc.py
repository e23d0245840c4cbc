"""``python -m bench.otlpenc``: the OTLP encoding of a batch of finished spans, the SDK's encoder
against tollgate_common.otlp's, side by side in one run (issue 12). The batch processor's thread
runs it holding the GIL the requests wait for, so at 100 % sampling its cost is request latency.
The spans are a proxied miss's: the server span, authorize, the cache lookup and one upstream
attempt, with the attributes the gateway sets. Min of ``--runs`` runs; the two encodings are
checked to be the same bytes first.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tollgate_common.otlp import export_request

Encoder = Callable[[Sequence[ReadableSpan]], bytes]


def request_spans(requests: int) -> tuple[ReadableSpan, ...]:
    """``requests`` proxied misses' spans, as the gateway records them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "tollgate-gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tollgate_gateway")
    for i in range(requests):
        with tracer.start_as_current_span("GET demo/eod", kind=SpanKind.SERVER) as server:
            server.set_attributes(
                {
                    "http.request.method": "GET",
                    "url.path": f"/api/v1/eod/{i % 50}",
                    "url.scheme": "http",
                    "server.address": "127.0.0.1",
                    "server.port": 8080,
                    "client.address": "127.0.0.1",
                    "tollgate.request_id": f"{i:016x}",
                    "http.route": "demo/eod",
                }
            )
            with tracer.start_as_current_span("authorize") as span:
                span.set_attributes({"tollgate.key_id": "k1a2b3c4", "tollgate.credits": 1})
            with tracer.start_as_current_span("cache get") as span:
                span.set_attribute("tollgate.cache.hit", False)
            with tracer.start_as_current_span("upstream", kind=SpanKind.CLIENT) as span:
                span.set_attributes(
                    {"server.address": "127.0.0.1", "server.port": 9001, "tollgate.attempt": 0}
                )
                span.set_attribute("http.response.status_code", 200)
            server.set_attribute("http.response.status_code", 200)
    return exporter.get_finished_spans()


def sdk_encoder(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def per_span_us(encode: Encoder, spans: Sequence[ReadableSpan], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        encode(spans)
        best = min(best, time.perf_counter() - t0)
    return best / len(spans) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=128, help="a batch: 4 spans a request")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    spans = request_spans(args.requests)
    ours = export_request(spans)
    if ours != sdk_encoder(spans):
        raise SystemExit("the encodings differ: fix tollgate_common.otlp before timing it")
    sdk = per_span_us(sdk_encoder, spans, args.runs)
    own = per_span_us(export_request, spans, args.runs)
    print(f"{len(spans)} spans, {len(ours)} bytes")
    print(f"sdk encoder       {sdk:6.2f} µs/span")
    print(f"tollgate encoder  {own:6.2f} µs/span   {sdk / own:.1f}x faster")


if __name__ == "__main__":
    main()
