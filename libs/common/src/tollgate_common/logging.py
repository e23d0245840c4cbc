"""Log configuration shared by the services: plain text for people, one JSON object per line for
log shippers. Secrets never reach a log line: callers log key prefixes, never keys.

A JSON line logged while a request is served carries its ``request_id`` and, when tracing is on
(tracing.py), the ``trace_id`` and ``span_id`` of that request, so a log search and a trace
lead to each other."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from opentelemetry import trace

from tollgate_common.served import SERVED, trace_id

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any ``extra=`` fields merged in."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # the request this task serves (decoded here: lines are rare)
        request_id, wire = served = SERVED.get()
        if request_id:
            out["request_id"] = request_id.decode("latin-1")
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:  # a recorded span: the line points at it
            out["trace_id"] = trace.format_trace_id(ctx.trace_id)
            out["span_id"] = trace.format_span_id(ctx.span_id)
        elif wire:  # not sampled: the trace id the request passed on
            out["trace_id"] = trace_id(served).decode("latin-1")
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
