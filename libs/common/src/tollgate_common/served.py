"""The request a task is serving, as its log lines and its outgoing calls need it: one context
variable, set once around each request by tracing.ServerSpans and read by logging.JsonFormatter
(the request and trace ids of every line) and by tracing (the trace context an unsampled request
passes on). One variable, not one per reader: each set and reset is a context copy on the hot
path, and an unsampled request at a low sampling ratio is most of them (issue 12).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple

TraceHeaders = tuple[tuple[bytes, bytes], ...]


class Served(NamedTuple):
    request_id: bytes = b""
    trace_id: bytes = b""  # hex, b"" outside a trace
    # An unsampled request's trace-context headers for the calls it makes (its trace id, a span id
    # of its own, not sampled); () for a sampled one, whose span the headers are made from.
    passed: TraceHeaders = ()
    replace: bool = False  # the client sent trace-context headers of its own, to be taken out
    # ``passed`` as HTTP/1.1 header lines, for a request with nothing of the client's to take
    # out (most): the upstream pool writes them as they are (b"" otherwise: see inject)
    wire: bytes = b""


# Served is a tuple, immutable: not the mutable default ruff B039 warns of.
SERVED: ContextVar[Served] = ContextVar("tollgate_served", default=Served())  # noqa: B039

__all__ = ["SERVED", "Served", "TraceHeaders"]
