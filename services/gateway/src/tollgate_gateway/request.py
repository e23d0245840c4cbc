"""One incoming request as the proxy sees it (``Incoming``, from the services' HTTP server or
the ASGI adapter in asgi.py), its answer (``Reply``), and the request id."""

from __future__ import annotations

from tollgate_common.http.exchange import Incoming, Reply
from tollgate_common.ids import UniqueIds
from tollgate_common.served import MAX_REQUEST_ID, SERVED
from tollgate_common.types import Headers

__all__ = [
    "ClientGone",
    "Incoming",
    "Reply",
    "new_request_id",
    "request_id",
    "sent_request_id",
    "served_request_id",
]


class ClientGone(Exception):
    """The client disconnected; there is nobody to answer."""


def request_id(headers: Headers) -> bytes:
    """The client's ``X-Request-Id`` when it is a usable one, else a new id."""
    return sent_request_id(headers) or new_request_id()


def served_request_id(headers: Headers) -> bytes:
    """The id of the request being served: the one its server span made (tracing on: the span,
    the log lines and the answer carry one id, made once), else ``request_id``."""
    return SERVED.get()[0] or request_id(headers)


def sent_request_id(headers: Headers) -> bytes | None:
    """The first usable ``X-Request-Id`` the client sent (1 to 128 ASCII bytes), or None."""
    for name, value in headers:
        if name == b"x-request-id" and 0 < len(value) <= MAX_REQUEST_ID and value.isascii():
            return value
    return None


def new_request_id() -> bytes:
    return _request_ids.fixed_bytes()


_request_ids = UniqueIds(6)
