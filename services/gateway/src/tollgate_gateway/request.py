"""One incoming request as the proxy sees it (``Incoming``, from the services' HTTP server or
the ASGI adapter in asgi.py), its answer (``Reply``), and the request id."""

from __future__ import annotations

from tollgate_common.http.exchange import Incoming, Reply
from tollgate_common.ids import UniqueIds
from tollgate_common.types import Headers

__all__ = ["ClientGone", "Incoming", "Reply", "request_id"]


class ClientGone(Exception):
    """The client disconnected; there is nobody to answer."""


def request_id(headers: Headers) -> bytes:
    for name, value in headers:
        if name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
            return value
    return _request_ids.fixed_bytes()


_request_ids = UniqueIds(6)
