"""tracing.py: when the OTEL_* variables turn tracing on, which exporters they ask for, the
server span and its propagation over raw header lists, the ids in JSON log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tollgate_common.http.exchange import Incoming, Reply
from tollgate_common.logging import JsonFormatter
from tollgate_common.served import LINE, LOW, NOTHING, SERVED, Served, trace_id
from tollgate_common.tracing import (
    HeadSampler,
    NewTraces,
    PreparedIds,
    ServerSpans,
    TracingConfigError,
    check_tracing_env,
    exporter_names,
    inject,
    link_to,
    named,
    sampled_lines,
    sampler_from_env,
    server_address,
    setup_tracing,
    tracing_wanted,
)
from tollgate_common.types import Headers

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_wanted(env: dict[str, str], on: bool) -> None:
    """On with an exporter or an endpoint, off with neither, with ``none`` or the SDK disabled."""
    assert tracing_wanted(env) is on


def test_off_sets_nothing_up() -> None:
    """No variable: no tracing object at all (the services keep their untraced handlers)."""
    assert setup_tracing("svc", {}) is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ["otlp:http/protobuf"]),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["otlp:grpc"]),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            ["otlp:http/protobuf"],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp:http/protobuf", "console"]),
    ],
)
def test_exporter_names(env: dict[str, str], names: list[str]) -> None:
    """The protocol defaults to http/protobuf; the traces-specific variable wins."""
    assert exporter_names(env) == names


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
        {"OTEL_TRACES_EXPORTER": "zipkin"},
    ],
)
def test_unknown_exporter_or_protocol_is_refused(env: dict[str, str]) -> None:
    """What this build cannot export with is a start-up error naming the variable."""
    with pytest.raises(TracingConfigError, match="OTEL_"):
        exporter_names(env)


def test_server_address() -> None:
    """Host and port from the Host header, IPv6 literals included."""
    assert server_address([(b"host", b"api.example:8080")]) == ("api.example", 8080)
    assert server_address([(b"host", b"api.example")]) == ("api.example", None)
    assert server_address([(b"host", b"[::1]:80")]) == ("::1", 80)
    assert server_address([]) == ("", None)


def test_link_to() -> None:
    """A link for a valid traceparent, none for a missing or malformed one."""
    link = link_to(PARENT)
    assert link is not None
    assert link.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert link_to("") is None
    assert link_to("00-zz-yy-01") is None


def _incoming(headers: Headers, query: bytes = b"") -> Incoming:
    async def body(_limit: int) -> bytes:
        return b""

    async def gone() -> None:
        return None

    return Incoming(
        "GET", "/api/v1/x/y", b"/api/v1/x/y", query, headers, "10.0.0.1", "http", body, gone
    )


def test_server_span_joins_the_callers_trace_and_propagates() -> None:
    """The server span is the incoming traceparent's child, named by its route; what the handler
    sends on carries this span's context instead of the client's; a log line of the request has
    its request id and trace id."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = ServerSpans(provider.get_tracer("t"), lambda _h: b"rid-1")
    seen: dict[str, object] = {}
    formatter = JsonFormatter()

    async def handler(req: Incoming) -> Reply:
        named("x")
        seen["out"] = inject([(b"traceparent", b"from-the-client"), (b"accept", b"*/*")])
        record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "t"})
        seen["log"] = json.loads(formatter.format(record))
        return Reply(503, [], b"")

    req = _incoming([(b"host", b"gw:8080"), (b"traceparent", PARENT.encode())], b"api_key=SECRET")
    reply = asyncio.run(spans.wrap(handler)(req))
    assert reply is not None
    assert reply.status == 503

    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET x"
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    attrs = dict(span.attributes or {})
    assert attrs["http.route"] == "x"
    assert attrs["url.path"] == "/api/v1/x/y"
    assert attrs["server.address"] == "gw"
    assert attrs["server.port"] == 8080
    assert attrs["http.response.status_code"] == 503
    assert span.status.status_code is StatusCode.ERROR
    assert "SECRET" not in repr(attrs)

    out = dict(seen["out"])  # type: ignore[call-overload]
    trace_hex = "0af7651916cd43dd8448eb211c80319c"
    assert out[b"traceparent"] == f"00-{trace_hex}-{span.context.span_id:016x}-01".encode()
    assert out[b"accept"] == b"*/*"
    assert len(seen["out"]) == 2  # type: ignore[arg-type]
    line = seen["log"]
    assert isinstance(line, dict)
    assert line["request_id"] == "rid-1"
    assert line["trace_id"] == trace_hex


def test_log_line_outside_a_request_has_no_ids() -> None:
    """Outside a request (and with tracing off) a JSON line carries neither id."""
    record = logging.makeLogRecord({"msg": "idle", "levelname": "INFO", "name": "t"})
    line = json.loads(JsonFormatter().format(record))
    assert "request_id" not in line
    assert "trace_id" not in line


def test_sampler_from_env() -> None:
    """The six standard samplers; the parent-based ones give the root's ratio bound."""
    assert sampler_from_env({})[1] == 1 << 64
    sampler, bound = sampler_from_env(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    )
    assert bound == 1 << 62
    assert "ParentBased" in sampler.get_description()
    assert sampler_from_env({"OTEL_TRACES_SAMPLER": "parentbased_always_off"})[1] == 0
    assert sampler_from_env({"OTEL_TRACES_SAMPLER": "traceidratio"})[1] is None
    for bad in (
        {"OTEL_TRACES_SAMPLER": "sometimes"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
    ):
        with pytest.raises(TracingConfigError, match="OTEL_TRACES_SAMPLER"):
            sampler_from_env(bad)


def test_head_sampler_agrees_with_the_sdk() -> None:
    """At 30 %: about 30 % of new traces sampled, each one the SDK then records on the id drawn
    here; a caller's unsampled traceparent stays unsampled on its trace id, a sampled one is
    the SDK's to record."""
    sampler, bound = sampler_from_env(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.3"}
    )
    assert bound is not None
    ids = PreparedIds()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = ServerSpans(provider.get_tracer("t"), None, HeadSampler(bound, ids))

    async def handler(req: Incoming) -> Reply:
        return Reply(200, [], b"")

    async def many(headers: Headers, n: int) -> None:
        for _ in range(n):
            await spans.wrap(handler)(_incoming(list(headers)))

    asyncio.run(many([], 2000))
    recorded = exporter.get_finished_spans()
    assert 450 < len(recorded) < 750  # 600 expected; the SDK agreed with every choice
    assert all((s.context.trace_id & 0xFFFFFFFFFFFFFFFF) < bound for s in recorded)

    exporter.clear()
    unsampled = PARENT[:-2] + "00"
    asyncio.run(many([(b"traceparent", unsampled.encode())], 50))
    assert exporter.get_finished_spans() == ()
    asyncio.run(many([(b"traceparent", PARENT.encode())], 50))
    assert len(exporter.get_finished_spans()) == 50


def test_an_unsampled_request_passes_its_trace_on_and_leaves_no_trace_context_behind() -> None:
    """Not sampled: the handler sees the request's ids and its trace context for the calls it
    makes (inject), a new span id on the same trace id, not sampled; and once the request's task
    is done the caller's context holds none of it (the unsampled path sets the variable in the
    request's task and does not reset it)."""
    sampler, bound = sampler_from_env(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
    )
    assert bound == 0
    ids = PreparedIds()
    provider = TracerProvider(sampler=sampler, id_generator=ids)
    spans = ServerSpans(provider.get_tracer("t"), lambda _h: b"rid-7", HeadSampler(bound, ids))
    seen: list[tuple[Served, Headers]] = []

    async def handler(req: Incoming) -> Reply:
        seen.append((SERVED.get(), inject([(b"accept", b"*/*")])))
        return Reply(200, [], b"")

    traced = spans.wrap(handler)

    async def answer() -> Reply | None:  # what the server's task per request does
        return await traced(_incoming([]))

    async def serve() -> None:
        await asyncio.create_task(answer())
        assert SERVED.get() == NOTHING  # the caller's context: untouched

    asyncio.run(serve())
    (request_id, wire), sent = seen[0]
    trace = trace_id((request_id, wire))
    assert request_id == trace  # it started a trace: its id is the trace's
    assert len(trace) == 32
    assert sent[0] == (b"accept", b"*/*")
    name, traceparent = sent[1]
    assert name == b"traceparent"
    assert traceparent.startswith(b"00-" + trace + b"-")
    assert traceparent.endswith(b"-00")  # not sampled
    assert len(traceparent) == 55
    assert wire == b"traceparent: " + traceparent + b"\r\n"  # what the pool writes


def _unsampled_spans(request_id: bytes = b"rid") -> ServerSpans:
    sampler, bound = sampler_from_env(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
    )
    assert bound is not None
    ids = PreparedIds()
    provider = TracerProvider(sampler=sampler, id_generator=ids)
    return ServerSpans(provider.get_tracer("t"), lambda _h: request_id, HeadSampler(bound, ids))


def test_a_malformed_traceparent_is_replaced_not_passed_on_beside_the_new_one() -> None:
    """A client's traceparent that does not parse starts a new trace, and the calls the request
    makes carry that trace's header alone: the client's is taken out, not sent as a second
    traceparent (it was, before: the new trace's context was appended to the client's headers)."""
    seen: list[Headers] = []

    async def handler(req: Incoming) -> Reply:
        seen.append(inject(req.headers))
        return Reply(200, [], b"")

    sent = [(b"traceparent", b"00-not-a-trace-01"), (b"accept", b"*/*")]
    asyncio.run(_serve(_unsampled_spans().wrap(handler), _incoming(sent)))
    found = [v for n, v in seen[0] if n == b"traceparent"]
    assert len(found) == 1
    assert found[0] != b"00-not-a-trace-01"
    assert found[0].endswith(b"-00")
    assert (b"accept", b"*/*") in seen[0]


def test_a_callers_unsampled_trace_is_passed_on_on_its_trace_id_unsampled() -> None:
    """Under a caller's unsampled traceparent the request serves under the caller's trace id,
    and its calls carry that trace, a span id of its own, not sampled, and the caller's
    tracestate; the caller's own headers are out of the request the handler sees, so the pool
    writes the request's lines as they are."""
    seen: list[tuple[Served, Headers, Headers]] = []

    async def handler(req: Incoming) -> Reply:
        seen.append((SERVED.get(), req.headers, inject(req.headers)))
        return Reply(200, [], b"")

    caller = PARENT[:-2] + "00"
    sent = [(b"traceparent", caller.encode()), (b"tracestate", b"v=1"), (b"accept", b"*/*")]
    asyncio.run(_serve(_unsampled_spans().wrap(handler), _incoming(sent)))
    served, headers, out = seen[0]
    trace = trace_id(served)
    assert trace == PARENT.split("-")[1].encode()
    assert served[0] == b"rid"  # not the caller's trace id: a request id of its own
    assert headers == [(b"accept", b"*/*")]
    (tp,) = [v for n, v in out if n == b"traceparent"]
    _, sent_trace, span_id, flags = tp.split(b"-")
    assert (sent_trace, flags) == (trace, b"00")
    assert span_id != PARENT.split("-")[2].encode()
    assert [v for n, v in out if n == b"tracestate"] == [b"v=1"]
    assert served[1] == b"traceparent: " + tp + b"\r\ntracestate: v=1\r\n"


def test_a_clients_request_id_is_kept_and_a_new_trace_still_made() -> None:
    """A client's ``X-Request-Id`` (an ingress adds one to every request) is the request's id
    when the first one is usable (1 to 128 ASCII bytes), the trace a new one, passed on
    unsampled; an unusable first one leaves the id to ``request_id`` (the gateway's finds a
    later usable one, or makes one)."""
    seen: list[tuple[Served, Headers]] = []

    async def handler(req: Incoming) -> Reply:
        seen.append((SERVED.get(), inject(req.headers)))
        return Reply(200, [], b"")

    traced = _unsampled_spans(b"made").wrap(handler)
    for sent in (
        [(b"accept", b"*/*"), (b"x-request-id", b"client-id"), (b"x-request-id", b"second")],
        [(b"x-request-id", b"")],
        [(b"x-request-id", b"x" * 129)],
        [(b"x-request-id", "é".encode())],
    ):
        asyncio.run(_serve(traced, _incoming(sent)))
    assert [s[0] for s, _ in seen] == [b"client-id", b"made", b"made", b"made"]
    for served, out in seen:
        assert len(trace_id(served)) == 32
        assert [n for n, _ in out].count(b"traceparent") == 1
    assert len({trace_id(s) for s, _ in seen}) == 4  # a new trace each


def test_the_unsampled_requests_go_to_their_own_handler() -> None:
    """``unsampled`` answers what the head sampler leaves out (the gateway's proxy without
    tracing's hooks); a sampled request goes to the traced handler."""
    got: list[str] = []

    def answering(name: str) -> Callable[[Incoming], Awaitable[Reply]]:
        async def handler(req: Incoming) -> Reply:
            got.append(name)
            return Reply(200, [], b"")

        return handler

    wrapped = _unsampled_spans().wrap(answering("traced"), unsampled=answering("unsampled"))
    asyncio.run(_serve(wrapped, _incoming([])))
    asyncio.run(_serve(wrapped, _incoming([(b"traceparent", PARENT.encode())])))
    assert got == ["unsampled", "traced"]  # a caller's sampled trace is recorded


async def _serve(handler: Callable[[Incoming], Awaitable[Reply | None]], req: Incoming) -> None:
    await asyncio.create_task(handler(req))  # in a task of its own, as the server does


def test_new_traces_are_well_formed_random_never_repeat_and_sampled_by_the_rule() -> None:
    """Ready-made entries across several batches: each unsampled one a traceparent line of the
    W3C form, not sampled, no all-zero id, its trace id its request id; each sampled one (the
    rule on the trace id's low 64 bits, below the bound) no line and its trace id; all
    different. Without request ids an unsampled entry carries none."""
    bound = 1 << 62  # a quarter sampled
    traces = NewTraces(bound, ids=True, batch=64)
    made = [traces.next() for _ in range(64 * 5 + 3)]
    form = re.compile(rb"traceparent: 00-([0-9a-f]{32})-[0-9a-f]{16}-00\r\n")
    for trace, wire in made:
        assert re.fullmatch(rb"[0-9a-f]{32}", trace)
        assert trace != b"0" * 32
        sampled = int(trace[16:], 16) < bound
        assert (wire == b"") == sampled
        if not sampled:
            line = form.fullmatch(wire)
            assert line is not None
            assert line[1] == trace
            assert b"-" + b"0" * 16 + b"-" not in wire
    assert len({s[0] for s in made}) == len(made)
    assert 40 < sum(not s[1] for s in made) < 130  # 81 expected
    anonymous = NewTraces(0, ids=False, batch=8)
    assert all(s[0] == b"" and s[1] for s in (anonymous.next() for _ in range(20)))


@pytest.mark.parametrize("bound", [0, 1, 1 << 56, (1 << 62) + 5, (1 << 64) - 1, 1 << 64])
def test_the_ratio_rule_is_read_off_the_lines_as_the_sdk_reads_the_trace_id(
    bound: int,
) -> None:
    """Pure: a line is sampled exactly when its trace id's low 64 bits are below the bound
    (TraceIdRatioBased), at the bound's edges too: the first digit of the low bits only picks
    the lines to read whole."""
    lows = [0, 1, bound - 1, bound, bound + 1, (1 << 64) - 1, 0x8000_0000_0000_0000]
    lows = [low for low in lows if 0 <= low < 1 << 64]
    lines = b"".join(LINE[: LOW.start] + b"%016x" % low + LINE[LOW.stop :] for low in lows)
    assert sampled_lines(lines, bound) == [i for i, low in enumerate(lows) if low < bound]


def test_bad_tracing_env_exits_with_one_line() -> None:
    """A protocol the build lacks stops the service with one line naming the variable; the
    same value with tracing off is not looked at."""
    bad = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    }
    with pytest.raises(
        SystemExit, match=r"^svc: invalid tracing settings: OTEL_EXPORTER_OTLP_PROTOCOL"
    ):
        check_tracing_env("svc", bad)
    check_tracing_env("svc", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
