"""The hot path's lean spans export as the SDK's own spans do: same tree, same message, through
the tracer's processors; with a span limit set the SDK's spans are made instead."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from tollgate_common.otlp import export_request
from tollgate_common.spans import LeanSpan, Spans, lean_allowed
from tollgate_common.tracing import PreparedIds

REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "x")]),
)
Start = Callable[[str, SpanKind, context.Context], trace.Span]
Child = Callable[[str, SpanKind], trace.Span]


def provider(ids: PreparedIds | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    p = TracerProvider(resource=Resource.create({"service.name": "t"}), id_generator=ids)
    p.add_span_processor(SimpleSpanProcessor(memory))
    return p, memory


def request(start: Start, child: Child, parent: context.Context) -> None:
    """What the gateway does with a sampled request's spans, through the functions given."""
    server = start("GET ns/x", SpanKind.SERVER, parent)
    server.set_attributes({"http.request.method": "GET", "url.path": "/api/v1/x"})
    server.set_attribute("server.port", 8080)
    token = context.attach(trace.set_span_in_context(server))
    try:
        server.add_event("breaker skip", {"tollgate.upstream": "http://10.0.0.1:80"})
        auth = child("authorize", SpanKind.CLIENT)
        auth.set_attributes({"tollgate.auth.allowed": True, "tollgate.auth.cost": 2})
        auth.set_status(Status(StatusCode.ERROR, "unavailable"))
        auth.set_status(StatusCode.UNSET)  # changes nothing
        auth.end()
        up = child("GET upstream", SpanKind.CLIENT)
        up.set_attribute("tollgate.attempt.hedge", False)
        up.set_status(Status(StatusCode.OK))
        up.set_status(Status(StatusCode.ERROR, "late"))  # OK is final
        up.end()
        server.update_name("GET ns/y")
        server.set_attribute("http.response.status_code", 200)
    finally:
        context.detach(token)
    server.end()
    server.set_attribute("after", "end")  # ignored: the span is done
    server.end()  # ends once


def _normalized(spans: tuple[ReadableSpan, ...]) -> ExportTraceServiceRequest:
    """The SDK encoder's message with the ids and times, which differ run to run, made
    positional: a span's id becomes its index, its parent the parent's index."""
    msg = encode_spans(spans)
    found = [s for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
    index = {s.span_id: i + 1 for i, s in enumerate(found)}
    for s in found:
        s.span_id = bytes([index[s.span_id]])
        s.parent_span_id = bytes([index.get(s.parent_span_id, 0)]) if s.parent_span_id else b""
        s.start_time_unix_nano = s.end_time_unix_nano = 0
        for e in s.events:
            e.time_unix_nano = 0
    return msg


def test_a_lean_request_exports_what_the_sdks_spans_export() -> None:
    """The same request made of lean spans and of the SDK's: the same OTLP message, once ids and
    times are set aside (same trace under the caller's, same tree, attributes, events, status,
    resource, scope), and tollgate_common.otlp encodes the lean ones as the SDK's encoder does."""
    parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    p, memory = provider()
    tracer = p.get_tracer("tollgate")
    spans = Spans(tracer, {})
    assert spans.lean

    def sdk_start(name: str, kind: SpanKind, ctx: context.Context) -> trace.Span:
        return tracer.start_span(name, ctx, kind)

    def sdk_child(name: str, kind: SpanKind) -> trace.Span:
        return tracer.start_span(name, kind=kind)

    request(sdk_start, sdk_child, parent)
    theirs = memory.get_finished_spans()
    memory.clear()
    request(spans.sampled, spans.child, parent)
    ours = memory.get_finished_spans()

    assert all(isinstance(s, LeanSpan) for s in ours)
    assert len(ours) == len(theirs) == 3
    assert _normalized(ours) == _normalized(theirs)
    assert ExportTraceServiceRequest.FromString(export_request(ours)) == encode_spans(ours)
    server = ours[-1]
    assert server.parent == REMOTE
    assert server.context.trace_id == REMOTE.trace_id
    assert server.context.trace_state == REMOTE.trace_state
    assert {s.parent.span_id for s in ours[:2] if s.parent} == {server.context.span_id}
    assert len({s.context.span_id for s in ours}) == 3


def test_a_new_trace_takes_the_trace_id_the_head_sampler_drew() -> None:
    """No caller's context: a root span on the id PreparedIds holds, sampled, random-id flag."""
    ids = PreparedIds()
    p, memory = provider(ids)
    spans = Spans(p.get_tracer("tollgate"), {})
    ids.prepared = 0x1234
    spans.sampled("GET", SpanKind.SERVER, context.Context()).end()
    (root,) = memory.get_finished_spans()
    assert root.parent is None
    assert root.context.trace_id == 0x1234
    assert root.context.trace_flags.sampled
    assert ids.prepared == 0  # taken


def test_current_marks_an_escaping_error_and_restores_the_context() -> None:
    p, memory = provider()
    spans = Spans(p.get_tracer("tollgate"), {})
    root = spans.sampled(
        "GET", SpanKind.SERVER, trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    )
    token = context.attach(trace.set_span_in_context(root))
    try:
        with pytest.raises(ConnectionError), spans.current("cache lookup"):
            raise ConnectionError("redis gone")
        assert trace.get_current_span() is root
    finally:
        context.detach(token)
    (lookup,) = memory.get_finished_spans()
    assert lookup.status.status_code is StatusCode.ERROR
    assert lookup.status.description == "ConnectionError"
    assert lookup.parent is not None
    assert lookup.parent.span_id == root.get_span_context().span_id


def test_a_child_outside_any_span_is_the_tracers_to_decide() -> None:
    p, memory = provider()
    span = Spans(p.get_tracer("tollgate"), {}).child("upstream", SpanKind.CLIENT)
    assert isinstance(span, SdkSpan)
    span.end()
    assert memory.get_finished_spans()[0].parent is None


def test_the_batch_processor_exports_lean_spans() -> None:
    """The processor the services use, with its export thread."""
    memory = InMemorySpanExporter()
    p = TracerProvider()
    p.add_span_processor(BatchSpanProcessor(memory))
    spans = Spans(p.get_tracer("tollgate"), {})
    spans.sampled(
        "GET", SpanKind.SERVER, trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    ).end()
    assert p.force_flush()
    (span,) = memory.get_finished_spans()
    assert span.context.trace_id == REMOTE.trace_id


@pytest.mark.parametrize(
    "env",
    [{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "1"}, {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4"}],
)
def test_a_span_limit_in_the_environment_makes_the_sdks_spans(env: dict[str, str]) -> None:
    """Lean spans do not clean attributes; with a limit set, the SDK's spans (which do) are made
    (the next test sees them honour it)."""
    assert not lean_allowed(env)
    p, _ = provider()
    spans = Spans(p.get_tracer("tollgate"), env)
    assert not spans.lean
    span = spans.sampled(
        "GET", SpanKind.SERVER, trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    )
    assert isinstance(span, SdkSpan)
    span.end()


def test_the_sdk_spans_made_under_a_limit_honour_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "1")
    p, memory = provider()
    spans = Spans(p.get_tracer("tollgate"))
    root = spans.sampled(
        "GET", SpanKind.SERVER, trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    )
    root.set_attributes({"a": 1, "b": 2})
    root.end()
    (span,) = memory.get_finished_spans()
    assert len(span.attributes or {}) == 1
    assert span.dropped_attributes == 1
