"""The gateway's side of authorization: ask the auth service whether a request may proceed.

INTERFACE CONTRACT (the proxy pipeline codes against exactly this):

- ``Decision``: the auth service's answer, whatever the outcome (the HTTP mapping of reasons lives
  in ``errors.py``, the one place errors become HTTP).
- ``Authorizer`` protocol: ``await authorize(key, route, path, cost, client) -> Decision`` and
  ``await refund(charge_id) -> None`` (credits of a request whose upstreams all failed come back).
- ``AllowAll``: used when no auth service is configured (``TOLLGATE_GATEWAY_AUTH_URL`` empty), e.g.
  the pure-proxy benchmark.
- ``HttpAuthorizer``: talks to the auth service's ``POST /v1/authorize`` and ``POST /v1/refund``;
  an unreachable or failing service gives ``Decision(allowed=False, reason="unavailable")`` and the
  route's ``failOpen`` decides (fail closed by default).

Reasons: ok, missing_key, invalid_key, revoked, expired, no_credits, rate_limited, unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = "ok"
    message: str = ""
    limit: int | None = None  # requests per period of the key's plan
    remaining: int | None = None  # requests left before the rate limit bites
    reset: float | None = None  # seconds until the limit is fully reset
    retry_after: float | None = None  # seconds, when rate limited
    credits_remaining: int | None = None
    charge_id: str | None = None  # for a refund when nothing good came back


class Authorizer(Protocol):
    async def authorize(
        self, key: str, route: str, path: str, cost: int, client: str
    ) -> Decision: ...

    async def refund(self, charge_id: str) -> None: ...

    async def aclose(self) -> None: ...


class AllowAll:
    """No auth service configured: every request proceeds, nothing is charged."""

    async def authorize(self, key: str, route: str, path: str, cost: int, client: str) -> Decision:
        return Decision(allowed=True)

    async def refund(self, charge_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def create_authorizer(auth_url: str, pool: object, timeout: float) -> Authorizer:
    """The authorizer for these settings: AllowAll when no auth service is configured.

    ``pool`` is the gateway's ``UpstreamPool`` (typed loosely until the HTTP authorizer lands).
    """
    if not auth_url:
        return AllowAll()
    raise NotImplementedError("HttpAuthorizer lands with the auth service (issue 3)")
