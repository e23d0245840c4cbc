"""The hot path's spans: made and ended here, exported by the SDK's BatchSpanProcessor like its own.

Why not the SDK's spans: a sampled gateway request makes four (server, authorize, cache lookup,
upstream), and the SDK's path for each runs the sampler chain again, its tracer metrics, a lock
and BoundedAttributes cleaning every value twice. ``python -m bench.instructions "tollgate miss
traced 100%"`` put that at ~470,000 instructions a request on the event loop, more than the
~275,000 the whole untraced request costs; at 1 % sampling it was ~2 % of the gateway's work on
its own. A ``LeanSpan`` is a ReadableSpan (what the processor, the exporters and
tollgate_common.otlp read) whose writes are plain dict and list operations.

Made only where the decision is already taken: a server span the head sampler sampled, a child
of a span that records (the SDK's parent-based sampler would sample it too). Attributes are the
code's own fixed set of strings, ints and bools, so nothing is cleaned; when a span limit is set
in the environment (``OTEL_SPAN_*_LIMIT``, ``OTEL_ATTRIBUTE_*_LIMIT``) ``Spans`` makes the SDK's
spans instead, which honour it.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from time import time_ns

from opentelemetry import context, trace
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

# What the SDK's root span on a RandomIdGenerator's id carries: sampled, random trace id (W3C 2).
_ROOT_FLAGS = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_UNSET = Status(StatusCode.UNSET)
_getrandbits = random.getrandbits
# The variables of the SDK's span limits (opentelemetry.sdk.environment_variables): set, the
# SDK's spans are made instead (module docstring).
LIMIT_VARS = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)


def lean_allowed(environ: Mapping[str, str]) -> bool:
    """Pure: whether no span limit is set, so the lean spans may be made (module docstring)."""
    return not any(environ.get(v, "").strip() for v in LIMIT_VARS)


class LeanSpan(trace.Span, ReadableSpan):
    """A span that records from its start to its end, then goes to ``on_end`` once."""

    _context: SpanContext  # always set here (ReadableSpan allows None)

    def __init__(
        self,
        name: str,
        span_context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        spans: Spans,
    ) -> None:
        # ReadableSpan's fields, set directly: its __init__ makes a Resource when given none.
        self._name = name
        self._context = span_context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, types.AttributeValue] = {}
        self._events: list[Event] = []
        self._links: Sequence[Link] = ()
        self._status = _UNSET
        self._resource = spans.resource
        self._instrumentation_scope = spans.scope
        self._instrumentation_info = None
        self._start_time: int | None = time_ns()
        self._end_time: int | None = None
        self._on_end = spans.on_end

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end_time is None and value is not None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self._end_time is None:
            self._attributes.update(attributes)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self._end_time is None:
            self._events.append(Event(name, attributes, timestamp or time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links = (*self._links, Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's: UNSET changes nothing, OK is final, a Status comes whole."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The exception's type and message as an ``exception`` event (no stack trace: it may
        show a request's data, and the hot path does not format one)."""
        found: dict[str, types.AttributeValue] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.escaped": str(escaped),
        }
        found.update(attributes or {})
        self.add_event("exception", found, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is None:
            self._end_time = end_time or time_ns()
            self._on_end(self)


class Spans:
    """Starts the hot path's spans for an SDK ``tracer``: lean ones unless a span limit is set
    (or the tracer is not the SDK's), else the tracer's own. A lean span ends into the tracer's
    span processors and carries its resource and scope, as the tracer's would."""

    def __init__(self, tracer: trace.Tracer, environ: Mapping[str, str] | None = None) -> None:
        self.tracer = tracer
        env = os.environ if environ is None else environ
        self.lean = isinstance(tracer, sdk_trace.Tracer) and lean_allowed(env)
        if isinstance(tracer, sdk_trace.Tracer):
            self.resource = tracer.resource
            # The tracer's scope is private in the SDK; the same name is the fallback.
            self.scope = getattr(tracer, "_instrumentation_scope", None) or InstrumentationScope(
                tracer.instrumentation_info.name
            )
            self.on_end = tracer.span_processor.on_end
            # PreparedIds in a service: the trace id the head sampler drew and sampled.
            self.new_trace_id = tracer.id_generator.generate_trace_id

    def sampled(self, name: str, kind: SpanKind, parent: context.Context) -> trace.Span:
        """The server span of a request the head sampler sampled: under the caller's (remote,
        sampled) span context in ``parent``, else the root of a new trace on the trace id the
        sampler decided on (``new_trace_id``)."""
        if not self.lean:
            return self.tracer.start_span(name, parent, kind)
        up = trace.get_current_span(parent).get_span_context()
        if up.is_valid:
            ctx = SpanContext(
                up.trace_id, _getrandbits(64) or 1, False, up.trace_flags, up.trace_state
            )
            return LeanSpan(name, ctx, up, kind, self)
        ctx = SpanContext(self.new_trace_id(), _getrandbits(64) or 1, False, _ROOT_FLAGS)
        return LeanSpan(name, ctx, None, kind, self)

    def child(self, name: str, kind: SpanKind = SpanKind.INTERNAL) -> trace.Span:
        """A span under the current one, which the caller knows records (outside any span, the
        tracer's own: its sampler decides on a new trace)."""
        up = trace.get_current_span().get_span_context()
        if not self.lean or not up.is_valid:
            return self.tracer.start_span(name, kind=kind)
        ctx = SpanContext(up.trace_id, _getrandbits(64) or 1, False, up.trace_flags, up.trace_state)
        return LeanSpan(name, ctx, up, kind, self)

    @contextlib.contextmanager
    def current(self, name: str, kind: SpanKind = SpanKind.INTERNAL) -> Iterator[trace.Span]:
        """``child`` as the current span while the block runs; an exception escaping marks it
        an error, named by type (the SDK's start_as_current_span, without a stack trace)."""
        span = self.child(name, kind)
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            context.detach(token)
            span.end()


__all__ = ["LIMIT_VARS", "LeanSpan", "Spans", "lean_allowed"]
