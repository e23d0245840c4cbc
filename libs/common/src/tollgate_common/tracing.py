"""OpenTelemetry tracing for every service: set up from the standard ``OTEL_*`` variables only,
W3C trace-context propagation over the services' raw header lists, and the server span of the
services' own HTTP server (httpserver.py).

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
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tollgate_common.exchange import Incoming, Reply
from tollgate_common.logging import REQUEST_ID

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
Handler = Callable[[Incoming], Awaitable[Reply | None]]
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
PROTOCOLS = ("http/protobuf", "grpc")
# What a W3C propagator reads and writes: replaced, not duplicated, on the way upstream.
PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})
_W3C = TraceContextTextMapPropagator()


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


def _exporter(name: str) -> SpanExporter:
    # Imported here: the gRPC stack costs ~100 ms of start-up and is only needed when asked for.
    if name == "otlp:grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "otlp:http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    return ConsoleSpanExporter()


@dataclass(slots=True)
class Tracing:
    """A process's tracing, when on: its tracer, and ``shutdown`` to flush what is queued."""

    tracer: trace.Tracer
    provider: TracerProvider

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
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER(_ARG)
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    log.info("tracing on: %s, exporters %s", resource.attributes.get(SERVICE_NAME), names)
    return Tracing(provider.get_tracer("tollgate"), provider)


def extract(headers: Headers) -> context.Context:
    """The trace context a request came with (an empty one without ``traceparent``)."""
    carrier = {n.decode(): v.decode("latin-1") for n, v in headers if n in PROPAGATED}
    return propagate.extract(carrier) if carrier else context.Context()


def inject(headers: Headers) -> Headers:
    """``headers`` with the current trace context in place of any the client sent."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    out = [(n, v) for n, v in headers if n not in PROPAGATED]
    out.extend((k.encode(), v.encode("latin-1")) for k, v in carrier.items())
    return out


def current_traceparent() -> tuple[str, str]:
    """The current span's ``traceparent`` and ``tracestate`` ("" each outside a trace), for
    contexts carried in data (an event) rather than in headers."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent", ""), carrier.get("tracestate", "")


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
        self, tracer: trace.Tracer, request_id: Callable[[Headers], bytes] = lambda _h: b""
    ) -> None:
        self.tracer = tracer
        self.request_id = request_id

    def wrap(self, handler: Handler, route: Callable[[Incoming], str] | None = None) -> Handler:
        """``handler`` in a server span; ``route`` names it up front (else ``named`` does,
        once the handler knows its route)."""

        async def traced(req: Incoming) -> Reply | None:
            rid = self.request_id(req.headers)
            parent = extract(req.headers)
            name = f"{req.method} {route(req)}" if route is not None else req.method
            span = self.tracer.start_span(name, parent, SpanKind.SERVER)
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
            rid_token = REQUEST_ID.set(rid.decode("latin-1"))
            try:
                reply = await handler(req)
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()
                raise
            finally:
                REQUEST_ID.reset(rid_token)
                context.detach(token)
            if reply is None:  # the client went away (nginx's 499)
                span.set_attribute("tollgate.client_gone", True)
            else:
                span.set_attribute("http.response.status_code", reply.status)
                if error_status(reply.status):
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
            return reply

        return traced


def named(route: str) -> None:
    """Name the current server span for its route (``http.route``, span name "GET route")."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("http.route", route)
        attributes = getattr(span, "attributes", None) or {}
        span.update_name(f"{attributes.get('http.request.method', '')} {route}".lstrip())


__all__ = [
    "ServerSpans",
    "Tracing",
    "TracingConfigError",
    "current_traceparent",
    "extract",
    "inject",
    "link_to",
    "maybe_span",
    "named",
    "setup_tracing",
    "tracing_wanted",
]
