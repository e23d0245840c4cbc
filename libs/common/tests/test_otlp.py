"""The OTLP encoding written by hand says what the SDK's own encoder says, span for span."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from tollgate_common.otlp import export_request


def _spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "t", "deployment.environment": "ci"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tollgate", "1.2.3", schema_url="https://opentelemetry.io/s/1")
    other = provider.get_tracer("other")
    remote = SpanContext(
        0xABC,
        0xDEF,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("k", "v")]),
    )
    parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    with tracer.start_as_current_span("GET route", context=parent, kind=SpanKind.SERVER) as root:
        root.set_attributes(
            {
                "http.request.method": "GET",
                "http.response.status_code": 200,
                "neg": -5,
                "big": 2**62,
                "ratio": 0.25,
                "ok": True,
                "no": False,
                "empty": "",
                "zero": 0,
                "names": ["a", "b"],
                "nums": [1, 2, 3],
                "unicode": "ü→✓",
            }
        )
        root.add_event("redis GET", {"db.system.name": "redis"})
        root.add_event("bare")
        with tracer.start_as_current_span("authorize", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "unavailable"))
        with other.start_as_current_span(
            "deliver", links=[Link(remote, {"why": "event"})], kind=SpanKind.CONSUMER
        ) as s:
            s.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("new trace", kind=SpanKind.INTERNAL):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_the_bytes_parse_to_the_sdk_encoders_message() -> None:
    spans = _spans()
    assert len(spans) == 4
    ours = ExportTraceServiceRequest.FromString(export_request(spans))
    theirs = encode_spans(spans)
    assert ours == theirs
    # and not by being empty: the tree is there
    names = [s.name for rs in ours.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(names) == ["GET route", "authorize", "deliver", "new trace"]


def test_each_span_alone_matches() -> None:
    for s in _spans():
        assert ExportTraceServiceRequest.FromString(export_request([s])) == encode_spans([s])


def test_an_empty_batch_is_an_empty_request() -> None:
    assert export_request([]) == b""
    assert ExportTraceServiceRequest.FromString(b"") == encode_spans([])


def test_dropped_counts_and_a_list_attribute_match() -> None:
    """A span over the SDK's limits (dropped attributes, events, links) and with a list value,
    which the encoder's attribute cache cannot key on."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        span_limits=SpanLimits(max_span_attributes=2, max_events=1, max_links=1)
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("s", links=[Link(remote), Link(remote)]) as s:
        s.set_attributes({"names": ["a", "b"], "n": 1, "dropped": True})
        s.add_event("one")
        s.add_event("two")
    (span,) = memory.get_finished_spans()
    assert span.dropped_attributes == span.dropped_events == span.dropped_links == 1
    ours = ExportTraceServiceRequest.FromString(export_request([span]))
    assert ours == encode_spans([span])
