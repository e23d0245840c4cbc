"""The gateway's side of authorization: ask the auth service whether a request may proceed.

INTERFACE CONTRACT (the proxy pipeline codes against exactly this):

- ``Decision`` (tollgate_common.ledger): the ledger's answer, whatever the outcome (the HTTP
  mapping of reasons lives in ``errors.py``, the one place errors become HTTP).
- ``Authorizer`` protocol: ``await authorize(key, route, path, cost, client, charge_id) ->
  Decision``, the charge id chosen by the gateway before it asks (tollgate_common.ledger), and
  ``await refund(charge_id) -> bool`` (True: credits came back; False: no such charge, a no-op that
  also voids the id; raises ``RefundNotLanded`` when the ledger could not be reached). Retries are
  the refund queue's (refunds.py). ``await me(key, client) -> Decision``: the key's own view
  for ``GET /_tollgate/v1/me`` (me.py), the ledger's free step (Ledger.me): the key checks, a due
  refill and the key's rate limit as for any request, nothing charged.
- ``create_authorizer``: None when no auth is configured (``TOLLGATE_GATEWAY_AUTH_URL`` empty in
  http mode), e.g. the pure-proxy benchmark: nothing is asked and nothing is charged.
- ``HttpAuthorizer``: talks to the auth service's ``POST /v1/authorize``, ``POST /v1/refund``
  and ``POST /v1/me``.
  Only a service that truly cannot be reached (connect error, timeout, 5xx) gives
  ``reason="unavailable"``, the one answer a route's ``failOpen`` serves through (fail closed by
  default); its 400 is the request's fault (``rejected``, 400 to the client) and any other answer
  without a decision is ``auth_error`` (503, never fail-open). Both unknown outcomes may have
  charged: the proxy refunds the charge id.
- ``LedgerAuthorizer`` (``AUTH_MODE=redis``): runs the auth service's own ledger script
  (tollgate_common.ledger) against Redis from the gateway: one EVALSHA, no HTTP hop, the same
  atomic accounting. The hop costs the auth process more CPU than the whole script (measured in
  bench/), which is why this mode exists.

Reasons and their messages: tollgate_common.ledger.decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import orjson
from redis.exceptions import RedisError

from tollgate_common.contracts.events import Event
from tollgate_common.ledger import Decision, Ledger
from tollgate_common.ledger.alerts import events_for
from tollgate_common.ledger.apikeys import MAX_KEY_CHARS, MAX_ROUTE_CHARS
from tollgate_common.ledger.decision import denied, from_wire
from tollgate_common.ledger.ledger import ME_ROUTE
from tollgate_common.redis.client import describe
from tollgate_common.redis.commands import Scripts
from tollgate_common.redis.resp import NotSent
from tollgate_gateway.client import UpstreamPool
from tollgate_gateway.connection import ConnectFailed, UpstreamError
from tollgate_gateway.deadline import Deadline
from tollgate_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class RefundNotLanded(Exception):
    """The ledger could not be reached: the refund must be tried again."""


class Authorizer(Protocol):
    async def authorize(
        self,
        key: str,
        route: str,
        path: str,
        cost: int,
        client: str,
        charge_id: str,
        cache_hit: bool = False,
    ) -> Decision: ...

    async def refund(self, charge_id: str, status_class: str = "") -> bool: ...

    async def me(self, key: str, client: str) -> Decision: ...

    async def aclose(self) -> None: ...


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
        self,
        key: str,
        route: str,
        path: str,
        cost: int,
        client: str,
        charge_id: str,
        cache_hit: bool = False,
    ) -> Decision:
        payload = {
            "key": key,
            "route": route[:MAX_ROUTE_CHARS],
            "path": path,
            "cost": cost,
            "client": client,
            "charge_id": charge_id,
            "cache_hit": cache_hit,
        }
        return await self._decide("/v1/authorize", payload)

    async def me(self, key: str, client: str) -> Decision:
        return await self._decide("/v1/me", {"key": key, "client": client})

    async def _decide(self, path: str, payload: dict[str, object]) -> Decision:
        """The Decision of one RPC that answers one (authorize, me)."""
        try:
            status, data = await self._post(path, payload)
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
            return from_wire(data)
        except TypeError:
            return AUTH_ERROR

    async def refund(self, charge_id: str, status_class: str = "") -> bool:
        try:
            payload: dict[str, object] = {"charge_id": charge_id, "status": status_class}
            status, data = await self._post("/v1/refund", payload)
        except (UpstreamError, TimeoutError) as exc:
            raise RefundNotLanded(repr(exc)) from exc
        if status != 200 or not isinstance(data, dict):
            raise RefundNotLanded(f"auth answered {status}")
        return data.get("refunded") is True

    async def aclose(self) -> None:
        return None  # the pool belongs to the gateway


UNAVAILABLE = denied("unavailable")
NOT_SENT = denied("unavailable", sent=False)
AUTH_ERROR = denied("auth_error")
REJECTED = denied("rejected")
INVALID_KEY = denied("invalid_key")
MISSING_KEY = denied("missing_key")


def too_long(key: str) -> bool:
    """A key longer than any the ledger accepts: refused here, in both modes, before asking."""
    return len(key) > MAX_KEY_CHARS


class LedgerAuthorizer:
    """Authorizes with the credit ledger in Redis directly (see the module docstring)."""

    def __init__(
        self, redis: Scripts, settings: GatewaySettings, emit: Callable[[Event], None]
    ) -> None:
        self.ledger = Ledger(redis, settings)
        self.s = settings
        self.emit = emit
        self._loop: asyncio.AbstractEventLoop | None = None

    async def authorize(
        self,
        key: str,
        route: str,
        path: str,
        cost: int,
        client: str,
        charge_id: str,
        cache_hit: bool = False,
    ) -> Decision:
        s = self.s
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            async with Deadline(self._loop, s.auth_timeout_seconds):
                d = await self.ledger.authorize(
                    key,
                    path,
                    cost,
                    client,
                    route=route[:MAX_ROUTE_CHARS],
                    cache_hit=cache_hit,
                    charge_id=charge_id,
                )
        except NotSent as exc:
            log.warning("credit ledger unreachable: %s", describe(exc))
            return NOT_SENT
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("credit ledger unavailable: %s", describe(exc))
            return UNAVAILABLE
        for event in events_for(d, route, client, s.invalid_key_burst, "gateway"):
            self.emit(event)
        return d

    async def me(self, key: str, client: str) -> Decision:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            async with Deadline(self._loop, self.s.auth_timeout_seconds):
                d = await self.ledger.me(key, client)
        except (RedisError, OSError, TimeoutError) as exc:  # NotSent included: nothing to undo
            log.warning("credit ledger unavailable: %s", describe(exc))
            return UNAVAILABLE
        for event in events_for(d, ME_ROUTE, client, self.s.invalid_key_burst, "gateway"):
            self.emit(event)
        return d

    async def refund(self, charge_id: str, status_class: str = "") -> bool:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            async with Deadline(self._loop, self.s.auth_timeout_seconds):
                left = await self.ledger.refund(charge_id, status_class)
        except (RedisError, OSError, TimeoutError) as exc:
            raise RefundNotLanded(repr(exc)) from exc
        return left >= 0

    async def aclose(self) -> None:
        await self.ledger.drain()  # its usage events under way; the Redis pool is the gateway's


def create_authorizer(
    settings: GatewaySettings, pool: UpstreamPool, redis: Scripts, emit: Callable[[Event], None]
) -> Authorizer | None:
    """The authorizer for these settings: None when no auth is configured (an open proxy)."""
    if settings.auth_mode == "redis":
        return LedgerAuthorizer(redis, settings, emit)
    if not settings.auth_url:
        return None
    return HttpAuthorizer(settings.auth_url, pool, settings.auth_timeout_seconds)
