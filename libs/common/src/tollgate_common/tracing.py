"""OpenTelemetry tracing for every service: set up from the standard ``OTEL_*`` variables only,
W3C trace-context propagation over the services' raw header lists, and the server span of the
services' own HTTP server (http/server.py).

On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an OTLP endpoint is
set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); off when none is
(or ``OTEL_TRACES_EXPORTER=none``, ``OTEL_SDK_DISABLED=true``). The other variables only tune it:
``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default, or ``grpc``),
``OTEL_TRACES_SAMPLER(_ARG)`` (default ``parentbased_always_on``: an incoming sampled
``traceparent`` is honoured), ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``.
These are the one exception to "one settings class reads the environment": the SDK reads them
itself, and the platform's tooling expects exactly these names.

Off costs nothing on the hot path: ``setup_tracing`` returns None and the services keep their
untraced handler, so no span object, context or header is made. On, spans end in a
BatchSpanProcessor: ``on_end`` appends to a bounded queue (dropping when full) and a thread
exports, so a slow or dead collector never blocks a request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import random
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from opentelemetry import context, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tollgate_common.contracts.events import Event
from tollgate_common.http.exchange import Handler, Incoming, Reply
from tollgate_common.served import LINE, LOW, MAX_REQUEST_ID, SERVED, TRACE, Served, passed
from tollgate_common.spans import Spans
from tollgate_common.types import Headers

log = logging.getLogger(__name__)

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
PROTOCOLS = ("http/protobuf", "grpc")
# W3C trace context: replaced, not duplicated, on the way upstream (baggage passes untouched).
PROPAGATED = frozenset({b"traceparent", b"tracestate"})
_W3C = TraceContextTextMapPropagator()
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_ALL = 1 << 64  # a TraceIdRatioBased bound that samples everything
# An unsampled request makes no span and touches no OpenTelemetry context at all (HeadSampler):
# its trace id, and the trace-context headers it passes on, ride in served.SERVED.
_TWO64 = 1 << 64  # above every trace id's low 64 bits
_getrandbits = random.getrandbits
_name = itemgetter(0)  # of a (name, value) header


class TracingConfigError(ValueError):
    """An ``OTEL_*`` value this process cannot honour (the service exits with it, one line)."""


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """Pure: whether these variables turn tracing on (module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return any(environ.get(v, "").strip() for v in ENDPOINT_VARS)


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """Pure: the exporters asked for, each ``otlp:<protocol>`` or ``console``; raises
    TracingConfigError for a name or protocol this build does not have."""
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    out = []
    for name in filter(None, names):
        if name == "console":
            out.append("console")
        elif name == "otlp":
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol not in PROTOCOLS:
                known = ", ".join(PROTOCOLS)
                raise TracingConfigError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not one of {known}"
                )
            out.append(f"otlp:{protocol}")
        elif name != "none":
            raise TracingConfigError(
                f"OTEL_TRACES_EXPORTER: {name!r} is not one of otlp, console, none"
            )
    return out


def sampler_from_env(environ: Mapping[str, str]) -> tuple[Sampler, int | None]:
    """Pure: the sampler ``OTEL_TRACES_SAMPLER(_ARG)`` names (default parentbased_always_on),
    and for the parent-based ones the root's TraceIdRatio bound (below it, a new trace is
    sampled), which lets ``HeadSampler`` decide without the SDK's span machinery."""
    name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if name not in SAMPLERS:
        raise TracingConfigError(
            f"OTEL_TRACES_SAMPLER: {name!r} is not one of {', '.join(SAMPLERS)}"
        )
    rate = 1.0
    if name.endswith("traceidratio"):
        arg = environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0").strip() or "1.0"
        try:
            rate = float(arg)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG: {arg!r} is not a ratio in [0, 1]")
    root: Sampler = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF}.get(
        name.removeprefix("parentbased_"), TraceIdRatioBased(rate)
    )
    if not name.startswith("parentbased_"):
        return root, None
    bound = root.bound if isinstance(root, TraceIdRatioBased) else _ALL if root is ALWAYS_ON else 0
    return ParentBased(root), bound


class PreparedIds(RandomIdGenerator):
    """Random ids, except a trace id ``HeadSampler`` already drew and sampled: the SDK then
    starts the span on that id, and its own sampler, deciding on the id, agrees."""

    def __init__(self) -> None:
        self.prepared = 0

    def generate_trace_id(self) -> int:
        if self.prepared:
            trace_id, self.prepared = self.prepared, 0
            return trace_id
        return super().generate_trace_id()


_ZERO_TRACE, _ZERO_SPAN = b"-" + b"0" * 32 + b"-", b"-" + b"0" * 16 + b"-"  # invalid ids
_HEX = bytes(b"0123456789abcdef"[b & 15] for b in range(256))  # a random byte to a hex digit


class NewTraces:
    """The ``Served`` of requests that start a trace, made ``batch`` at a time with the ratio
    rule already applied; a request takes its own with one C-level ``next``. A batch is
    C-level throughout: random bytes translated to hex digits where the lines have them, the
    lines' 22 fixed bytes copied in strided, a slice or two and a tuple per entry (map, zip),
    and the rule read off one strided slice: ~3,500 instructions an entry, its freeing
    included, where the line alone cost ~2,200 before and the NamedTuple made per request for
    it ~1,600 more (callgrind).

    An entry of a trace the rule samples has no ``wire`` (its span makes the headers) and the
    trace id as its ``request_id`` (for PreparedIds); the others carry the trace id as their
    request id when ``ids`` (else b"")."""

    def __init__(self, bound: int, ids: bool, batch: int = 1024) -> None:
        self.bound = bound
        self.ids = ids
        width = len(LINE)
        at = range(0, batch * width, width)
        self._lines = [slice(i, i + width) for i in at]
        self._traces = [slice(i + TRACE.start, i + TRACE.stop) for i in at]
        digits = {*range(TRACE.start, TRACE.stop), *range(TRACE.stop + 1, TRACE.stop + 17)}
        fixed = [i for i in range(width) if i not in digits]  # "traceparent: 00-", "-", "-00\r\n"
        self._fixed = [(slice(i, None, width), LINE[i : i + 1] * batch) for i in fixed]
        batches = map(self._make, itertools.repeat(batch))  # a batch made when one is used up
        self.next: Callable[[], Served] = functools.partial(
            next, itertools.chain.from_iterable(batches)
        )

    def _make(self, n: int) -> list[Served]:
        while True:
            out = bytearray(os.urandom(len(LINE) * n).translate(_HEX))
            for where, chars in self._fixed:
                out[where] = chars
            made = bytes(out)
            if _ZERO_TRACE not in made and _ZERO_SPAN not in made:
                break
        traces = map(made.__getitem__, self._traces)
        rids = traces if self.ids else itertools.repeat(b"", n)
        entries: list[Served] = list(zip(rids, map(made.__getitem__, self._lines), strict=True))
        for i in sampled_lines(made, self.bound):
            entries[i] = (made[self._traces[i]], b"")
        return entries


def sampled_lines(lines: bytes, bound: int) -> list[int]:
    """Pure: the traceparent lines (``LINE``'s form, one after another) whose trace id
    TraceIdRatioBased samples at ``bound``: its low 64 bits below the bound. Only a line whose
    first low digit is at most the bound's can be: those few are found with one strided slice
    and a translate, and only they are read whole."""
    width = len(LINE)
    n = len(lines) // width
    if bound >= _TWO64:
        return list(range(n))
    table = bytearray(256)  # 1 at each hex digit up to the bound's first
    for digit in b"0123456789abcdef"[: (bound >> 60) + 1]:
        table[digit] = 1
    maybe = lines[LOW.start :: width].translate(table)
    return [
        i
        for i in itertools.compress(range(n), maybe)
        if int(lines[width * i + LOW.start : width * i + LOW.stop], 16) < bound
    ]


class HeadSampler:
    """The parent-based sampling decision of a server span, made before the SDK is asked:
    an unsampled request (99 of 100 at 1 %) gets its trace context here for the price of one
    ready-made entry (NewTraces), instead of the SDK's ~10 µs path (start_span,
    sampler chain, tracer metrics), which bench/ measured at several percent of a proxied
    request. The decision is the SDK's own: the TraceIdRatio rule on the trace id for a new
    trace, the caller's sampled flag under a remote parent."""

    def __init__(self, bound: int, ids: PreparedIds) -> None:
        self.bound = bound
        self.ids = ids

    def front(
        self,
        sampled: Callable[[Incoming, bytes, context.Context], Awaitable[Reply | None]],
        unsampled: Handler,
        request_id: Callable[[Headers], bytes] | None,
    ) -> Handler:
        """The request's entry point: ``sampled`` for a request the sampler takes, else
        ``unsampled`` with the request's ids and the trace-context header lines it passes on in
        served.SERVED (its trace id, a span id of its own, not sampled). A request that starts
        a trace has the client's first ``X-Request-Id`` as its id when that one is usable, else
        its trace id; ``request_id`` makes the id of the others (None: no request ids).

        The request that starts a trace and is not sampled (most, at a low ratio) is two
        attribute reads (what the server saw of its headers, Incoming), one ready-made entry
        (NewTraces) and one context-variable set: ~6,500 instructions with the entry's share of
        its batch, where a C-level look at the header names, a line made, its slices and a
        NamedTuple cost ~10,000, and ~14,500 with an X-Request-Id (callgrind; the README's
        Tracing → Cost has what that is in req/s)."""
        ids = self.ids
        ids_wanted = request_id is not None
        make_id = request_id or _no_id
        take = NewTraces(self.bound, ids_wanted).next

        def front(req: Incoming) -> Awaitable[Reply | None]:
            context_sent, first = req.trace_context, req.first_request_id
            if context_sent is None:  # a server that did not look (an ASGI adapter's)
                context_sent, first = correlation(req.headers)
            if context_sent:
                return under_callers(req)
            if first is None:
                served = take()
                if served[1]:
                    # The handler's own awaitable, with no coroutine around it to reset the
                    # variable after: the server answers each request (or each run of pipelined
                    # ones, each setting its own first) in a task of its own, whose context ends
                    # with it; its access-log line still carries the request's ids.
                    SERVED.set(served)
                    return unsampled(req)
                trace_id = served[0]
                ids.prepared = int(trace_id, 16)  # the SDK's span takes it, and agrees
                return sampled(req, trace_id if ids_wanted else b"", _EMPTY)
            # An X-Request-Id and no trace context (an ingress in front adds one to every
            # request): the first one is the request's id when usable.
            rid = b""
            if ids_wanted:
                rid = first
                if not (0 < len(rid) <= MAX_REQUEST_ID and rid.isascii()):
                    rid = make_id(req.headers)  # a later usable one, or a new id
            return started(req, rid)

        def started(req: Incoming, rid: bytes) -> Awaitable[Reply | None]:
            """A request that starts a trace, its id chosen."""
            trace_id, wire = take()
            if wire:
                SERVED.set((rid, wire))
                return unsampled(req)
            ids.prepared = int(trace_id, 16)
            return sampled(req, rid, _EMPTY)

        def under_callers(req: Incoming) -> Awaitable[Reply | None]:
            """A request that came with trace-context headers of its own."""
            headers = req.headers
            rid = make_id(headers)
            parent = extract(headers)
            remote = trace.get_current_span(parent).get_span_context()
            if remote.is_valid and remote.trace_flags.sampled:
                return sampled(req, rid, parent)  # inject replaces the caller's headers
            # The caller's trace-context headers out of the request: its calls carry the
            # request's own (on the caller's trace, or a new one for a malformed header).
            req = dataclasses.replace(req, headers=without_trace_context(headers))
            if remote.is_valid:
                SERVED.set((rid, wire_under(remote)))
                return unsampled(req)
            return started(req, rid)  # a malformed one: a new trace

        return front


def correlation(headers: Headers) -> tuple[bool, bytes | None]:
    """Pure: whether ``headers`` carry a traceparent or tracestate, and the first X-Request-Id
    (None: none): what the services' own server sees as it reads a head (Incoming)."""
    names = list(map(_name, headers))
    first = headers[names.index(b"x-request-id")][1] if b"x-request-id" in names else None
    return not PROPAGATED.isdisjoint(names), first


def without_trace_context(headers: Headers) -> list[tuple[bytes, bytes]]:
    """Pure: ``headers`` without ``traceparent`` and ``tracestate``."""
    return [(n, v) for n, v in headers if n not in PROPAGATED]


def wire_under(remote: SpanContext) -> bytes:
    """The header lines of a request under a caller's unsampled trace context: the caller's
    trace id, a span id of its own, not sampled, and the caller's tracestate (the propagator
    parsed it: its members hold no CR or LF)."""
    line = b"traceparent: 00-%032x-%016x-00\r\n" % (remote.trace_id, _getrandbits(64) or 1)
    state = remote.trace_state.to_header().encode("latin-1")
    return line + b"tracestate: " + state + b"\r\n" if state else line


def check_tracing_env(program: str, environ: Mapping[str, str] | None = None) -> None:
    """At start-up, before any worker: exit with one clear line when an ``OTEL_*`` value cannot
    be honoured (as settings.load_settings does for the service's own settings)."""
    env = os.environ if environ is None else environ
    try:
        if tracing_wanted(env):
            exporter_names(env)
            sampler_from_env(env)
    except TracingConfigError as exc:
        sys.exit(f"{program}: invalid tracing settings: {exc}")


def _exporter(name: str) -> SpanExporter:
    # Imported here: the gRPC stack costs ~100 ms of start-up and is only needed when asked for.
    if name == "otlp:grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "otlp:http/protobuf":
        from tollgate_common.otlp import HttpSpanExporter

        return HttpSpanExporter()
    return ConsoleSpanExporter()


@dataclass(slots=True)
class Tracing:
    """A process's tracing, when on: its tracer, and ``shutdown`` to flush what is queued."""

    tracer: trace.Tracer
    provider: TracerProvider
    heads: HeadSampler | None = None  # None: the sampler is not parent-based

    def server_spans(self, request_id: Callable[[Headers], bytes] | None = None) -> ServerSpans:
        return ServerSpans(self.tracer, request_id or _no_id, self.heads)

    def shutdown(self) -> None:
        self.provider.shutdown()


@contextlib.contextmanager
def maybe_span(
    tracing: Tracing | None,
    name: str,
    attributes: Mapping[str, str | int | bool] | None = None,
    links: Sequence[Link | None] = (),
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[trace.Span | None]:
    """A current span named ``name`` when tracing is on, nothing when off (the span-per-unit
    of work of the background services: a reconcile, a delivery). An exception escaping marks
    the span as an error."""
    if tracing is None:
        yield None
        return
    with tracing.tracer.start_as_current_span(
        name, kind=kind, attributes=attributes, links=[lk for lk in links if lk is not None]
    ) as span:
        yield span


def setup_tracing(default_service: str, environ: Mapping[str, str] | None = None) -> Tracing | None:
    """Tracing from the environment, or None when it is off. Call it in the process that
    serves (after a worker fork: the batch processor's thread does not survive one)."""
    env = os.environ if environ is None else environ
    if not tracing_wanted(env):
        return None
    names = exporter_names(env)
    sampler, bound = sampler_from_env(env)
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service}))
    ids = PreparedIds()
    provider = TracerProvider(sampler=sampler, resource=resource, id_generator=ids)
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    log.info("tracing on: %s, exporters %s", resource.attributes.get(SERVICE_NAME), names)
    heads = HeadSampler(bound, ids) if bound is not None else None
    return Tracing(provider.get_tracer("tollgate"), provider, heads)


def extract(headers: Headers) -> context.Context:
    """The trace context a request came with (an empty one without ``traceparent``)."""
    carrier: dict[str, str] | None = None
    for n, v in headers:  # a loop, not a comprehension: most requests carry none
        if n in PROPAGATED:
            carrier = carrier or {}
            carrier[n.decode()] = v.decode("latin-1")
    return _EMPTY if carrier is None else _W3C.extract(carrier)


_EMPTY = context.Context()


def recording() -> bool:
    """Whether the current request's span records (an unsampled one answers without a look at
    the OpenTelemetry context)."""
    return not SERVED.get()[1] and trace.get_current_span().is_recording()


def inject(headers: Headers) -> Headers:
    """``headers`` with the current trace context in place of any the client sent (formatted
    here: the propagator API costs several µs a call on the proxy path)."""
    out = without_trace_context(headers)
    sent = passed(SERVED.get())
    if sent:  # not sampled: the context it passes on
        out.extend(sent)
        return out
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        out.append(
            (
                b"traceparent",
                b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, ctx.trace_flags & 1),
            )
        )
        if ctx.trace_state:
            out.append((b"tracestate", ctx.trace_state.to_header().encode("latin-1")))
    return out


def current_traceparent() -> tuple[str, str]:
    """The current ``traceparent`` and ``tracestate`` ("" each outside a trace), for contexts
    carried in data (an event) rather than in headers."""
    found = dict(inject([]))
    return (
        found.get(b"traceparent", b"").decode("latin-1"),
        found.get(b"tracestate", b"").decode("latin-1"),
    )


def in_trace(event: Event) -> Event:
    """``event`` carrying the current trace context, unless it has one (call it where the event
    is raised, in the request: a queue or a task later may have lost the context)."""
    if event.traceparent:
        return event
    traceparent, tracestate = current_traceparent()
    if not traceparent:
        return event
    return event.model_copy(update={"traceparent": traceparent, "tracestate": tracestate})


def link_to(traceparent: str, tracestate: str = "") -> Link | None:
    """A span link to the trace context carried in data; None for none or a malformed one."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent, "tracestate": tracestate}
    span_context: SpanContext = trace.get_current_span(_W3C.extract(carrier)).get_span_context()
    return Link(span_context) if span_context.is_valid else None


def server_address(headers: Headers) -> tuple[str, int | None]:
    """Pure: host and port of the Host header (``server.address``, ``server.port``)."""
    for name, value in headers:
        if name == b"host":
            host = value.decode("latin-1")
            if host.startswith("["):  # [v6]:port
                h, _, rest = host[1:].partition("]")
                return h, int(rest[1:]) if rest[1:].isdigit() else None
            h, _, port = host.rpartition(":") if ":" in host else (host, "", "")
            return h, int(port) if port.isdigit() else None
    return "", None


def error_status(status: int) -> bool:
    """Pure: a server span's status is an error for 5xx only (semantic conventions: a 4xx is
    the client's, not the server's)."""
    return status >= 500


class ServerSpans:
    """The server span of each request on the services' own HTTP server, the request's trace
    context (``traceparent`` honoured) and its request id current while it is served, so the
    JSON log lines of that request carry both (tollgate_common.logging)."""

    def __init__(
        self,
        tracer: trace.Tracer,
        request_id: Callable[[Headers], bytes] | None = None,
        heads: HeadSampler | None = None,
    ) -> None:
        self.tracer = tracer
        self.spans = Spans(tracer)
        self.request_id = request_id or _no_id
        self.heads = heads

    def wrap(
        self,
        handler: Handler,
        route: Callable[[Incoming], str] | None = None,
        unsampled: Handler | None = None,
    ) -> Handler:
        """``handler`` in a server span; ``route`` names it up front (else ``named`` does,
        once the handler knows its route). ``unsampled`` serves the requests the head sampler
        leaves out (default ``handler``): one with no tracing hooks to ask on the way."""

        # Under the head sampler the request is sampled by the time a span is made: a lean one
        # (spans.py). Without one (a sampler that is not parent-based) the SDK's decides.
        start = self.spans.sampled if self.heads is not None else self._sdk_span

        async def recorded(req: Incoming, rid: bytes, parent: context.Context) -> Reply | None:
            name = f"{req.method} {route(req)}" if route is not None else req.method
            span = start(name, SpanKind.SERVER, parent)
            if span.is_recording():
                if route is not None:
                    span.set_attribute("http.route", route(req))
                host, port = server_address(req.headers)
                span.set_attributes(
                    {
                        "http.request.method": req.method,
                        "url.path": req.path,  # the query may hold an API key: never here
                        "url.scheme": req.scheme,
                        "server.address": host,
                        "client.address": req.client,
                    }
                )
                if rid:
                    span.set_attribute("tollgate.request_id", rid.decode("latin-1"))
                if port is not None:
                    span.set_attribute("server.port", port)
            token = context.attach(trace.set_span_in_context(span, parent))
            rid_token = SERVED.set((rid, b""))
            try:
                reply = await handler(req)
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()
                raise
            finally:
                SERVED.reset(rid_token)
                context.detach(token)
            if reply is None:  # the client went away (nginx's 499)
                span.set_attribute("tollgate.client_gone", True)
            else:
                span.set_attribute("http.response.status_code", reply.status)
                if error_status(reply.status):
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
            return reply

        if self.heads is not None:
            ids = None if self.request_id is _no_id else self.request_id
            return self.heads.front(recorded, unsampled or handler, ids)

        def traced(req: Incoming) -> Awaitable[Reply | None]:
            rid = self.request_id(req.headers)
            return recorded(req, rid, extract(req.headers))

        return traced

    def _sdk_span(self, name: str, kind: SpanKind, parent: context.Context) -> trace.Span:
        return self.tracer.start_span(name, parent, kind)


def _no_id(_headers: Headers) -> bytes:
    return b""


def named(route: str) -> None:
    """Name the current server span for its route (``http.route``, span name "GET route")."""
    if SERVED.get()[1]:  # not sampled: no span to name
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("http.route", route)
        attributes = getattr(span, "attributes", None) or {}
        span.update_name(f"{attributes.get('http.request.method', '')} {route}".lstrip())


__all__ = [
    "ServerSpans",
    "Tracing",
    "TracingConfigError",
    "check_tracing_env",
    "current_traceparent",
    "extract",
    "in_trace",
    "inject",
    "link_to",
    "maybe_span",
    "named",
    "setup_tracing",
    "tracing_wanted",
]
