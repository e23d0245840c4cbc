"""The gateway's side of authorization: ask the auth service whether a request may proceed.

INTERFACE CONTRACT (the proxy pipeline codes against exactly this):

- ``Decision``: the auth service's answer, whatever the outcome (the HTTP mapping of reasons lives
  in ``errors.py``, the one place errors become HTTP).
- ``Authorizer`` protocol: ``await authorize(key, route, path, cost, client, charge_id) ->
  Decision``, the charge id chosen by the gateway before it asks (tollgate_common.credits), and
  ``await refund(charge_id) -> bool`` (True: credits came back; False: no such charge, a no-op that
  also voids the id; raises ``RefundNotLanded`` when the ledger could not be reached). Retries are
  the refund queue's (refunds.py).
- ``AllowAll``: used when no auth service is configured (``TOLLGATE_GATEWAY_AUTH_URL`` empty), e.g.
  the pure-proxy benchmark.
- ``HttpAuthorizer``: talks to the auth service's ``POST /v1/authorize`` and ``POST /v1/refund``.
  Only a service that truly cannot be reached (connect error, timeout, 5xx) gives
  ``reason="unavailable"``, the one answer a route's ``failOpen`` serves through (fail closed by
  default); its 400 is the request's fault (``rejected``, 400 to the client) and any other answer
  without a decision is ``auth_error`` (503, never fail-open). Both unknown outcomes may have
  charged: the proxy refunds the charge id.
- ``LedgerAuthorizer`` (``AUTH_MODE=redis``): runs the auth service's own ledger script
  (tollgate_common.credits) against Redis from the gateway: one EVALSHA, no HTTP hop, the same
  atomic accounting. The hop costs the auth process more CPU than the whole script (measured in
  bench/), which is why this mode exists.

Reasons: ok, missing_key, invalid_key, revoked, expired, no_credits, rate_limited, rejected,
unavailable, auth_error (the last two: outcome unknown).
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

from tollgate_common.credits import MAX_KEY_CHARS, Ledger, events_for
from tollgate_common.events import Event
from tollgate_common.redis import describe
from tollgate_common.resp import NotSent
from tollgate_gateway.client import UpstreamPool
from tollgate_gateway.connection import ConnectFailed, UpstreamError
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
    sent: bool = True  # False: the ask never left the gateway, so it cannot have charged
    cost: int = 0  # credits debited (the plan's price for the path, else the route's)
    plan: str = ""  # the key's plan, when the ledger read it


class RefundNotLanded(Exception):
    """The ledger could not be reached: the refund must be tried again."""


class Authorizer(Protocol):
    async def authorize(
        self, key: str, route: str, path: str, cost: int, client: str, charge_id: str
    ) -> Decision: ...

    async def refund(self, charge_id: str) -> bool: ...

    async def aclose(self) -> None: ...


class AllowAll:
    """No auth service configured: every request proceeds, nothing is charged."""

    async def authorize(
        self, key: str, route: str, path: str, cost: int, client: str, charge_id: str
    ) -> Decision:
        return Decision(allowed=True)

    async def refund(self, charge_id: str) -> bool:
        return False

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

    async def _post(self, path: str, payload: dict[str, object]) -> tuple[int, object]:
        """Status and JSON of one call; raises UpstreamError (ConnectFailed: nothing was sent)
        or TimeoutError when auth could not be reached in time."""
        body = orjson.dumps(payload)
        headers = [(b"content-type", b"application/json")]
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            async with Deadline(self._loop, self.timeout):
                r = await self.pool.request(self.origin, "POST", self.base + path, headers, body)
        except (UpstreamError, TimeoutError) as exc:
            log.warning("auth service call %s failed: %r", path, exc)
            raise
        try:
            return r.status, orjson.loads(r.body)
        except orjson.JSONDecodeError:
            return r.status, None

    async def authorize(
        self, key: str, route: str, path: str, cost: int, client: str, charge_id: str
    ) -> Decision:
        payload = {
            "key": key,
            "route": route[:256],
            "path": path,
            "cost": cost,
            "client": client,
            "charge_id": charge_id,
        }
        try:
            status, data = await self._post("/v1/authorize", payload)
        except ConnectFailed:
            return NOT_SENT
        except (UpstreamError, TimeoutError):
            return UNAVAILABLE
        if status >= 500:
            return UNAVAILABLE
        if status == 400:  # auth refused the request's input (its RPC's one 4xx): the client's
            log.warning("auth refused an authorize as malformed: %.200r", data)
            return REJECTED
        if status != 200 or not isinstance(data, dict) or "reason" not in data:
            # not auth's answer (a wrong AUTH_URL, a proxy's 404): no decision, never fail-open
            log.warning("auth answered %d without a decision: %.200r", status, data)
            return AUTH_ERROR
        try:
            return Decision(**{k: v for k, v in data.items() if k in FIELDS})
        except TypeError:
            return AUTH_ERROR

    async def refund(self, charge_id: str) -> bool:
        try:
            status, data = await self._post("/v1/refund", {"charge_id": charge_id})
        except (UpstreamError, TimeoutError) as exc:
            raise RefundNotLanded(repr(exc)) from exc
        if status != 200 or not isinstance(data, dict):
            raise RefundNotLanded(f"auth answered {status}")
        return data.get("refunded") is True

    async def aclose(self) -> None:
        return None  # the pool belongs to the gateway


UNAVAILABLE = Decision(allowed=False, reason="unavailable", message="auth service unreachable")
NOT_SENT = Decision(
    allowed=False, reason="unavailable", message="auth service unreachable", sent=False
)
AUTH_ERROR = Decision(allowed=False, reason="auth_error", message="no decision from auth")
REJECTED = Decision(allowed=False, reason="rejected", message="refused as malformed")
INVALID_KEY = Decision(allowed=False, reason="invalid_key")
UNKNOWN_OUTCOME = frozenset({"unavailable", "auth_error"})  # may have charged
FIELDS = frozenset(Decision.__dataclass_fields__)


def too_long(key: str) -> bool:
    """A key longer than any the ledger accepts: refused here, in both modes, before asking."""
    return len(key) > MAX_KEY_CHARS


class LedgerAuthorizer:
    """Authorizes with the credit ledger in Redis directly (see the module docstring)."""

    def __init__(
        self, redis: object, settings: GatewaySettings, emit: Callable[[Event], None]
    ) -> None:
        self.ledger = Ledger(redis, settings.key_pepper)
        self.s = settings
        self.emit = emit
        self._loop: asyncio.AbstractEventLoop | None = None

    async def authorize(
        self, key: str, route: str, path: str, cost: int, client: str, charge_id: str
    ) -> Decision:
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
                    charge_id=charge_id,
                    route=route,
                )
        except NotSent as exc:
            log.warning("credit ledger unreachable: %s", describe(exc))
            return NOT_SENT
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
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            async with Deadline(self._loop, self.s.auth_timeout_seconds):
                left = await self.ledger.refund(charge_id, self.s.charge_ttl_seconds)
        except (RedisError, OSError, TimeoutError) as exc:
            raise RefundNotLanded(repr(exc)) from exc
        return left >= 0

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
