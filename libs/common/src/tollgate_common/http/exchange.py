"""One request and its answer as the services' handlers see them, whatever server carried
the request (server.py, or an ASGI server through an adapter)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson

from tollgate_common.types import Headers


@dataclass(slots=True)
class Incoming:
    """One request, whatever server carried it (this one, or an ASGI server through an adapter)."""

    method: str
    path: str  # percent-decoded
    raw_path: bytes  # as sent, for an upstream request-target
    query_string: bytes
    headers: Headers  # names lower-case
    client: str
    scheme: str
    read_body: Callable[[int], Awaitable[bytes]]  # raises BodyTooLarge (and the adapter's own)
    disconnected: Callable[[], Awaitable[None]]  # returns once the client has gone
    # Set by a server that cancels the request's task itself when the client leaves (this one):
    # then nothing needs to watch, and this tells that cancellation from the others. None: the
    # handler watches ``disconnected`` (ASGI servers).
    gone: Callable[[], bool] | None = None
    # Seen by a server that looks while it reads the head (this one), for the trace's front
    # (tracing.HeadSampler): whether a traceparent or tracestate came, and the first
    # X-Request-Id as sent (None: none). None, None: the server did not look (ASGI adapters);
    # the front looks itself.
    trace_context: bool | None = None
    first_request_id: bytes | None = None


class BodySource(Protocol):
    """A body too large to hold whole, pulled as the client takes it (the gateway's
    bodystream.BodyStream). The server awaits ``next()`` only while the client's transport is
    below its write high-water mark, which is the back-pressure that reaches the upstream."""

    @property
    def length(self) -> int | None:
        """The body's length when known in advance (a Content-Length); None: chunked."""
        ...

    async def next(self) -> bytes:
        """The next bytes; b"" at the end; raises when the body cannot be completed."""
        ...

    def close(self) -> None:
        """Done with it, at its end or not (a client gone mid-body)."""
        ...


@dataclass(slots=True)
class Reply:
    """The answer to one request: what a server writes (its length and framing are the
    server's business). ``stream``, when set, is the body (``body`` is empty then)."""

    status: int
    headers: Headers
    body: bytes
    stream: BodySource | None = None


class BodyTooLarge(ValueError):
    """A request body over the limit a handler asked for."""


def error_body(message: str) -> bytes:
    return orjson.dumps({"status": False, "message": message})


Handler = Callable[[Incoming], Awaitable[Reply | None]]
