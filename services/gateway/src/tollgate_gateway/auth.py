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

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import orjson

from tollgate_gateway.client import UpstreamError, UpstreamPool

log = logging.getLogger(__name__)


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


class HttpAuthorizer:
    """Asks the auth service over HTTP, on the gateway's own keep-alive pool.

    Per gateway request: one HTTP round trip to auth, which makes one Redis round trip (EVALSHA).
    Anything but a well-formed answer in time is ``unavailable``: the route's failOpen decides.
    """

    def __init__(self, base_url: str, pool: UpstreamPool, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base = parts.path.rstrip("/")
        self.pool = pool
        self.timeout = timeout

    async def _post(self, path: str, payload: dict[str, object]) -> dict[str, object] | None:
        body = orjson.dumps(payload)
        headers = [(b"content-type", b"application/json")]
        try:
            async with asyncio.timeout(self.timeout):
                r = await self.pool.request(self.origin, "POST", self.base + path, headers, body)
            data = orjson.loads(r.body)
        except (UpstreamError, TimeoutError, orjson.JSONDecodeError) as exc:
            log.warning("auth service call %s failed: %r", path, exc)
            return None
        return data if isinstance(data, dict) else None

    async def authorize(self, key: str, route: str, path: str, cost: int, client: str) -> Decision:
        data = await self._post(
            "/v1/authorize",
            {"key": key, "route": route, "path": path, "cost": cost, "client": client},
        )
        if data is None or "reason" not in data:
            return UNAVAILABLE
        try:
            return Decision(**{k: v for k, v in data.items() if k in FIELDS})  # type: ignore[arg-type]
        except TypeError:
            return UNAVAILABLE

    async def refund(self, charge_id: str) -> None:
        for _ in range(3):  # credits must not be lost to one dropped connection
            if await self._post("/v1/refund", {"charge_id": charge_id}) is not None:
                return
            await asyncio.sleep(0.2)
        log.error("refund of charge %s failed after 3 tries", charge_id)

    async def aclose(self) -> None:
        return None  # the pool belongs to the gateway


UNAVAILABLE = Decision(allowed=False, reason="unavailable", message="auth service unreachable")
FIELDS = frozenset(Decision.__dataclass_fields__)


def create_authorizer(auth_url: str, pool: UpstreamPool, timeout: float) -> Authorizer:
    """The authorizer for these settings: AllowAll when no auth service is configured."""
    if not auth_url:
        return AllowAll()
    return HttpAuthorizer(auth_url, pool, timeout)
