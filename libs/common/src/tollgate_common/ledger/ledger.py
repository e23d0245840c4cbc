"""``Ledger``: runs the authorize and refund scripts against one Redis (one EVALSHA each)."""

from __future__ import annotations

import time
from importlib.resources import files

from tollgate_common.contracts.events import USAGE_STREAM_KEY, USAGE_STREAM_MAXLEN
from tollgate_common.ledger import layout
from tollgate_common.ledger.apikeys import MAX_CREDITS, key_hash, key_id_of, new_charge_id
from tollgate_common.ledger.decision import Decision, from_script
from tollgate_common.ledger.settings import LedgerSettings
from tollgate_common.redis.client import LuaScript
from tollgate_common.redis.commands import Scripts

_HERE = files("tollgate_common.ledger")
ME_ROUTE = "_tollgate/me"
"""The usage route of a refill that a /me call applied (no ApiBackend is named so: a Kubernetes
namespace cannot start with '_')."""


class Ledger:
    """The credit ledger of one Redis, with the settings both services share."""

    def __init__(self, redis: Scripts, settings: LedgerSettings) -> None:
        self.redis = redis
        self.s = settings
        self._authorize = LuaScript((_HERE / "authorize.lua").read_text())
        self._refund = LuaScript((_HERE / "refund.lua").read_text())

    async def authorize(
        self,
        raw_key: str,
        path: str,
        cost: int,
        client: str,
        *,
        route: str = "",
        cache_hit: bool = False,
        charge_id: str | None = None,
        now_ms: int | None = None,
        free: bool = False,
    ) -> Decision:
        """One authorize, counted in the key's usage under ``route``; ``charge_id`` chosen by
        the caller (see the package docstring); ``now_ms`` only for tests of the arithmetic.
        ``free``: the step of ``GET /_tollgate/v1/me`` (``me``)."""
        s = self.s
        charge_id = charge_id or new_charge_id()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        key_id = key_id_of(raw_key)
        hashed = key_hash(raw_key, s.key_pepper) if key_id else "-"
        keys = [
            layout.record_key(hashed),
            layout.invalid_key(client),
            layout.charge_key(charge_id),
            layout.tombstone_key(charge_id),
            layout.usage_key(key_id or "-", layout.hour_of(now)),
            USAGE_STREAM_KEY,
        ]
        args = [
            now,
            cost,
            charge_id,
            s.charge_ttl_seconds,
            path,
            s.credits_low_threshold,
            s.invalid_key_window_seconds,
            route,
            1 if cache_hit else 0,
            s.usage_retention_days * 86400,
            USAGE_STREAM_MAXLEN,
            1 if free else 0,
            MAX_CREDITS,
        ]
        return from_script(await self._authorize(self.redis, keys, args), charge_id)

    async def me(self, raw_key: str, client: str, *, now_ms: int | None = None) -> Decision:
        """The key's own view (``GET /_tollgate/v1/me``): the authorize step made free
        (authorize.lua says what that means), so the key checks, a due refill and the key's rate
        limit apply as to any request, from the one copy of them, and nothing is charged. A
        refill it applies counts under the usage route ``ME_ROUTE``."""
        return await self.authorize(
            raw_key, "", 0, client, route=ME_ROUTE, now_ms=now_ms, free=True
        )

    async def refund(self, charge_id: str, status_class: str = "") -> int:
        """Give a charge back exactly once; returns the credits after, or -1 if unknown. Either
        way the charge id is dead from now on: an authorize with it debits nothing.
        ``status_class`` ("4xx", "5xx" or ""): what the client was answered instead, counted in
        the charge's usage bucket with the refund."""
        keys = [layout.charge_key(charge_id), layout.tombstone_key(charge_id), USAGE_STREAM_KEY]
        args = [
            self.s.charge_ttl_seconds,
            status_class,
            self.s.usage_retention_days * 86400,
            charge_id,
            int(time.time() * 1000),
            USAGE_STREAM_MAXLEN,
        ]
        left: int = await self._refund(self.redis, keys, args)
        return left
