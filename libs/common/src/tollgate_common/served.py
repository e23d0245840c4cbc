"""The request a task is serving, as its log lines and its outgoing calls need it: one context
variable, set once around each request by tracing.ServerSpans and read by logging.JsonFormatter
(the request and trace ids of every line) and by tracing (the trace context an unsampled request
passes on). One variable, not one per reader: each set and reset is a context copy on the hot
path, and an unsampled request at a low sampling ratio is most of them (issue 12).
"""

from __future__ import annotations

from contextvars import ContextVar

TraceHeaders = tuple[tuple[bytes, bytes], ...]

# A client's X-Request-Id is the request's id when it is 1 to this many ASCII bytes (the
# gateway's request.sent_request_id; tracing.HeadSampler reads the first one C-level).
MAX_REQUEST_ID = 128

# An unsampled request's traceparent header line, and where its parts are: the value, the trace
# id's 32 hex digits, the low 64 bits the ratio rule reads (tracing.HeadSampler); a tracestate
# line may follow it.
LINE = b"traceparent: 00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-00\r\n"
VALUE, TRACE, LOW = slice(13, 68), slice(16, 48), slice(32, 48)
_STATE = slice(len(LINE) + len(b"tracestate: "), -2)


# The request a task serves, as a plain 2-tuple ``(request_id, wire)``: one made with no class
# call costs ~270 instructions, a NamedTuple's ~1,600 even through tuple.__new__ (callgrind), and
# an unsampled request (most, at a low ratio) makes one and nothing else. Readers unpack it.
#   request_id: b"" outside a request, or in a service that makes no request ids.
#   wire: an unsampled request's trace context as the HTTP/1.1 header lines of the calls it
#     makes (its trace id, a span id of its own, not sampled; a caller's tracestate after it);
#     b"" for a sampled request (its span makes the headers) and outside a trace. The client's
#     own trace-context headers are out of the request by then (tracing.HeadSampler).
Served = tuple[bytes, bytes]
NOTHING: Served = (b"", b"")


def trace_id(served: Served) -> bytes:
    """Hex, b"" outside a trace or for a sampled request (its span has it)."""
    return served[1][TRACE]


def passed(served: Served) -> TraceHeaders:
    """The wire lines as (name, value) headers: () for a sampled request or outside a trace."""
    wire = served[1]
    if not wire:
        return ()
    if len(wire) == len(LINE):
        return ((b"traceparent", wire[VALUE]),)
    return ((b"traceparent", wire[VALUE]), (b"tracestate", wire[_STATE]))


SERVED: ContextVar[Served] = ContextVar("tollgate_served", default=NOTHING)

__all__ = [
    "LINE",
    "LOW",
    "MAX_REQUEST_ID",
    "NOTHING",
    "SERVED",
    "TRACE",
    "VALUE",
    "Served",
    "TraceHeaders",
    "passed",
    "trace_id",
]
