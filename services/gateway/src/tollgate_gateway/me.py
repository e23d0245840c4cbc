"""``GET /_tollgate/v1/me`` (issue 13): an API consumer's own key, seen with that key.

The key comes as on any route (``?api_key=`` or a header); the answer is its key id, plan,
remaining credits, rate-limit state and next refill, never the key itself. It is never charged
and it is rate-limited: the ledger's free step (tollgate_common.ledger.Ledger.me) runs the same
authorize script as every request with the cost forced to 0, so the key checks, a due refill and
the key's own GCRA apply from their one copy (a second, read-only script would need a second
rate limiter for this endpoint, and would show a refill as due that the step applies anyway).
Both auth modes: the auth service's ``POST /v1/me`` or the gateway's own ledger (auth.py).
Unknown or missing keys are 401, a limited key 429, as on any route (errors.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from tollgate_common.ledger import Decision
from tollgate_common.ledger.apikeys import key_id_of
from tollgate_gateway.auth import INVALID_KEY, MISSING_KEY, Authorizer, too_long
from tollgate_gateway.errors import (
    AccessDenied,
    AuthUnavailable,
    GatewayError,
    MethodNotAllowed,
    RouteNotFound,
    decision_headers,
    to_response,
)
from tollgate_gateway.headers import key_from_headers, split_query
from tollgate_gateway.request import Incoming, Reply

ME_PATH = "/_tollgate/v1/me"
# an answer about one key, to that key's holder: no shared cache may keep it (RFC 9111 §5.2.2.5)
HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def me_body(d: Decision, key_id: str) -> dict[str, Any]:
    """The JSON answer of an allowed step (pure): no secret, times in Unix seconds (next_refill)
    or seconds from now (reset, window)."""
    limit = None
    if d.limit is not None:
        limit = {
            "limit": d.limit,
            "remaining": max(d.remaining or 0, 0),
            "reset": d.reset,
            "window": d.window,
        }
    return {
        "status": True,
        "key_id": key_id,
        "plan": d.plan,
        "credits": d.credits_remaining,
        "rate_limit": limit,
        "next_refill": d.next_refill,
    }


def credential(req: Incoming) -> str | None:
    """The request's API key, found as the proxy path finds it (query first, then headers)."""
    key, _ = split_query(req.query_string)
    return key if key is not None else key_from_headers(req.headers)


async def decide(authorizer: Authorizer | None, req: Incoming, key: str | None) -> Decision:
    """The step for this request, or a GatewayError to answer instead."""
    if authorizer is None:  # an open proxy has no keys to describe
        raise RouteNotFound("no auth configured: no keys here")
    if req.method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{ME_PATH} answers GET only")
    if not key:
        raise AccessDenied(MISSING_KEY)
    if too_long(key):
        raise AccessDenied(INVALID_KEY)
    d = await authorizer.me(key, req.client)
    if d.reason in ("unavailable", "auth_error"):  # never fail-open: there is nothing to serve
        raise AuthUnavailable()
    if not d.allowed:
        raise AccessDenied(d)
    return d


async def serve_me(authorizer: Authorizer | None, req: Incoming) -> Reply:
    """One ``/_tollgate/v1/me`` request, answered."""
    key = credential(req)
    try:
        d = await decide(authorizer, req, key)
    except GatewayError as exc:
        status, headers, body = to_response(exc)
        return Reply(status, [*HEADERS, *headers], body)
    # the ledger knew the key, so it is well-formed: its id is its public part
    body = orjson.dumps(me_body(d, key_id_of(key or "") or ""))
    return Reply(200, [*HEADERS, *decision_headers(d)], b"" if req.method == "HEAD" else body)
