"""Every error a client of the gateway can see, and the one place they become HTTP.

GatewayError
├── BadRequest            400  malformed request (bad query encoding, ...)
├── PayloadTooLarge       413  request body over the limit
├── UriTooLong            414  path over the ledger's limit (MAX_PATH_CHARS)
├── RouteNotFound         404  no ApiBackend claims the path
├── MethodNotAllowed      405  a method /_tollgate/v1/me does not answer
├── AccessDenied          400/401/402/403/429  the auth service said no (reason decides)
├── AuthUnavailable       503  auth service or its Redis unreachable (fail closed), or no decision
├── NoData                404  upstreams answered, none had data (``status: false``, 404)
├── UpstreamFailed        502  every upstream failed (error, reset, 5xx, invalid JSON);
│                              the client reads the route and a count, ``detail`` the URLs
└── DeadlineExceeded      504  the route's timeout passed
"""

from __future__ import annotations

import json

from tollgate_common.ledger import Decision
from tollgate_common.ledger.decision import MESSAGES
from tollgate_common.types import Headers

# Unknown keys are "who are you?" (401); a known key that may no longer be used is "you may not"
# (403), the convention of RFC 9110 §15.5.2/§15.5.4 that GitHub and Stripe follow too.
DENIAL_STATUS = {
    "missing_key": 401,
    "invalid_key": 401,
    "revoked": 403,
    "expired": 403,
    "no_credits": 402,
    "rate_limited": 429,
    "rejected": 400,
}


class GatewayError(Exception):
    status = 500
    default_message = "internal error"

    def __init__(self, message: str = "", *, detail: str = "") -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message  # what the client reads
        # What only the logs and the failure event get: upstream URLs are internal topology.
        self.detail = detail or self.message


class BadRequest(GatewayError):
    status = 400
    default_message = "bad request"


class PayloadTooLarge(GatewayError):
    status = 413
    default_message = "request body too large"


class UriTooLong(GatewayError):
    status = 414
    default_message = "request path too long"


class RouteNotFound(GatewayError):
    status = 404
    default_message = "no such route"


class MethodNotAllowed(GatewayError):
    status = 405
    default_message = "method not allowed"


class NoData(GatewayError):
    status = 404
    default_message = "no data for this request"


class UpstreamFailed(GatewayError):
    status = 502
    default_message = "every upstream server failed"


class DeadlineExceeded(GatewayError):
    status = 504
    default_message = "the upstream servers did not answer in time"


class AuthUnavailable(GatewayError):
    status = 503
    default_message = "the auth service is unavailable; try again shortly"


class AccessDenied(GatewayError):
    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.status = DENIAL_STATUS.get(decision.reason, 403)
        super().__init__(MESSAGES.get(decision.reason) or decision.message or "access denied")


def error_body(message: str) -> bytes:
    return json.dumps({"status": False, "message": message}).encode()


def decision_headers(d: Decision) -> Headers:
    """Rate-limit and credit headers that a Decision carries: the IETF ``RateLimit-Policy`` and
    ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers-10, structured fields) and the
    ``X-RateLimit-*`` trio GitHub made common, all in one stated window: the time the key's plan
    takes to refill its whole burst (``w``). The plan allows ``limit`` (its burst) requests at once
    and ``limit`` per window on average, i.e. its rate; ``remaining`` may be sent now; ``reset``
    is when the whole burst is back. The window is rounded up to whole seconds, as the field
    wants: a rate it states is never above the plan's."""
    out: Headers = []
    remaining = max(d.remaining, 0) if d.remaining is not None else None
    reset = max(int(d.reset + 0.999), 0) if d.reset is not None else None
    if d.limit is not None:
        out.append((b"x-ratelimit-limit", str(d.limit).encode()))
        if d.window is not None:
            name = d.plan or "default"  # plan names are [a-z0-9_-]: a valid sf-string as is
            w = max(int(d.window + 0.999), 1)
            out.append((b"ratelimit-policy", f'"{name}";q={d.limit};w={w}'.encode()))
            if remaining is not None and reset is not None:
                out.append((b"ratelimit", f'"{name}";r={remaining};t={reset}'.encode()))
    if remaining is not None:
        out.append((b"x-ratelimit-remaining", str(remaining).encode()))
    if reset is not None:
        out.append((b"x-ratelimit-reset", str(reset).encode()))
    if d.credits_remaining is not None:
        out.append((b"x-credits-remaining", str(d.credits_remaining).encode()))
    if d.reason == "rate_limited" and d.retry_after is not None:
        out.append((b"retry-after", str(max(int(d.retry_after + 0.999), 1)).encode()))
    return out


def to_response(exc: GatewayError) -> tuple[int, Headers, bytes]:
    """Status, extra headers and JSON body for an error: the one place errors become HTTP."""
    headers: Headers = []
    if isinstance(exc, AccessDenied):
        headers = decision_headers(exc.decision)
    return exc.status, headers, error_body(exc.message)
