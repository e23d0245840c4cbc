"""The gateway's side of authorization: ask the auth service whether a request may proceed.

INTERFACE CONTRACT (the proxy pipeline codes against exactly this):

- ``Decision``: the auth service's answer, whatever the outcome (the HTTP mapping of reasons lives
  in ``errors.py``, the one place errors become HTTP).
- ``Authorizer`` protocol: ``await authorize(key, route, path, cost, client) -> Decision`` and
  ``await refund(charge_id) -> bool`` (credits of a request whose upstreams all failed come back;
  False: given up, the credits are lost).
- ``AllowAll``: used when no auth service is configured (``TOLLGATE_GATEWAY_AUTH_URL`` empty), e.g.
  the pure-proxy benchmark.
- ``HttpAuthorizer``: talks to the auth service's ``POST /v1/authorize`` and ``POST /v1/refund``;
  an unreachable or failing service gives ``Decision(allowed=False, reason="unavailable")`` and the
  route's ``failOpen`` decides (fail closed by default).
- ``LedgerAuthorizer`` (``AUTH_MODE=redis``): runs the auth service's own ledger script
  (tollgate_common.credits) against Redis from the gateway: one EVALSHA, no HTTP hop, the same
  atomic accounting. The hop costs the auth process more CPU than the whole script (measured in
  bench/), which is why this mode exists.

Reasons: ok, missing_key, invalid_key, revoked, expired, no_credits, rate_limited, unavailable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import orjson
from redis.exceptions import RedisError

from tollgate_common.credits import Ledger, events_for
from tollgate_common.events import Event
from tollgate_common.redis import describe
from tollgate_gateway.client import UpstreamError, UpstreamPool
from tollgate_gateway.deadline import Deadline
from tollgate_gateway.settings import GatewaySettings

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
    cost: int = 0  # credits debited (the plan's price for the path, else the route's)
    plan: str = ""  # the key's plan, when the ledger read it


class Authorizer(Protocol):
    async def authorize(
        self, key: str, route: str, path: str, cost: int, client: str
    ) -> Decision: ...

    async def refund(self, charge_id: str) -> bool: ...

    async def aclose(self) -> None: ...


class AllowAll:
    """No auth service configured: every request proceeds, nothing is charged."""

    async def authorize(self, key: str, route: str, path: str, cost: int, client: str) -> Decision:
        return Decision(allowed=True)

    async def refund(self, charge_id: str) -> bool:
        return True

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
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _post(self, path: str, payload: dict[str, object]) -> dict[str, object] | None:
        body = orjson.dumps(payload)
        headers = [(b"content-type", b"application/json")]
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            async with Deadline(self._loop, self.timeout):
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

    async def refund(self, charge_id: str) -> bool:
        for _ in range(3):  # credits must not be lost to one dropped connection
            if await self._post("/v1/refund", {"charge_id": charge_id}) is not None:
                return True
            await asyncio.sleep(0.2)
        log.error("refund of charge %s failed after 3 tries", charge_id)
        return False

    async def aclose(self) -> None:
        return None  # the pool belongs to the gateway


UNAVAILABLE = Decision(allowed=False, reason="unavailable", message="auth service unreachable")
FIELDS = frozenset(Decision.__dataclass_fields__)


class LedgerAuthorizer:
    """Authorizes with the credit ledger in Redis directly (see the module docstring)."""

    def __init__(
        self, redis: object, settings: GatewaySettings, emit: Callable[[Event], None]
    ) -> None:
        self.ledger = Ledger(redis, settings.key_pepper)
        self.s = settings
        self.emit = emit
        self._loop: asyncio.AbstractEventLoop | None = None

    async def authorize(self, key: str, route: str, path: str, cost: int, client: str) -> Decision:
        s = self.s
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            async with Deadline(self._loop, s.auth_timeout_seconds):
                o = await self.ledger.authorize(
                    key,
                    path,
                    cost,
                    client,
                    charge_ttl=s.charge_ttl_seconds,
                    low_threshold=s.credits_low_threshold,
                    invalid_window=s.invalid_key_window_seconds,
                )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("credit ledger unavailable: %s", describe(exc))
            return UNAVAILABLE
        for event in events_for(o, route, client, s.invalid_key_burst, "gateway"):
            self.emit(event)
        return Decision(
            allowed=o.allowed,
            reason=o.reason,
            limit=o.limit,
            remaining=o.remaining,
            reset=o.reset,
            retry_after=o.retry_after,
            credits_remaining=o.credits,
            charge_id=o.charge_id,
            cost=o.cost,
            plan=o.plan,
        )

    async def refund(self, charge_id: str) -> bool:
        for _ in range(3):  # credits must not be lost to one dropped connection
            try:
                await self.ledger.refund(charge_id)
                return True
            except (RedisError, OSError, TimeoutError):
                await asyncio.sleep(0.2)
        log.error("refund of charge %s failed after 3 tries", charge_id)
        return False

    async def aclose(self) -> None:
        return None  # the Redis pool belongs to the gateway


def create_authorizer(
    settings: GatewaySettings, pool: UpstreamPool, redis: object, emit: Callable[[Event], None]
) -> Authorizer:
    """The authorizer for these settings: AllowAll when no auth is configured."""
    if settings.auth_mode == "redis":
        return LedgerAuthorizer(redis, settings, emit)
    if not settings.auth_url:
        return AllowAll()
    return HttpAuthorizer(settings.auth_url, pool, settings.auth_timeout_seconds)
