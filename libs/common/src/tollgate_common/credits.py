"""The credit ledger's contract in Redis: key format and hashing, the data layout, and the one
atomic authorize step (authorize.lua) with its refund (refund.lua).

Shared because two services run it: the auth service (its /v1/authorize endpoint and admin API)
and, in ``AUTH_MODE=redis``, the gateway itself, which then makes the same single EVALSHA without
the HTTP hop to auth. Both run the identical script, so accounting stays exact either way.

Round trips: ``authorize`` is ONE EVALSHA (key record, plan, rate-limit state, debit, charge
record and its usage event); ``refund`` is one EVALSHA (with its usage event).

Charges are idempotent and reconcilable (issue 11): the caller chooses the charge id before it
asks, so an authorize whose answer it never learnt (a timeout, a dropped connection, a 5xx) can
still be refunded by that id. The refund leaves a tombstone (``refunded:<id>``, as long-lived as
a charge record) that the authorize script honours: a refund of a charge that never happened is a
no-op and stays one, even if that authorize is applied later; an authorize applied twice with one
id debits once. What a tombstone cannot cover: an authorize applied more than
``charge_ttl`` after its refund (the tombstone has expired) - seconds are the real-world bound.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from tollgate_common.events import (
    USAGE_STREAM_KEY,
    USAGE_STREAM_MAXLEN,
    Event,
    EventType,
    Severity,
)
from tollgate_common.ids import UniqueIds
from tollgate_common.redis import LuaScript

P = "tollgate:auth:"
KEY_RE = re.compile(r"^tg_([a-z2-7]{8})_([A-Za-z0-9_-]{32,64})$")
# What an authorize may carry: longer is the client's error (401 for a key, 414 for a path), which
# the gateway answers itself, in both auth modes, before it asks.
MAX_KEY_CHARS = 256
MAX_PATH_CHARS = 2048
CHARGE_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"


_charge_ids = UniqueIds(10)


def new_charge_id() -> str:
    """Unique across processes and workers (uuid4's getrandom() was ~4% of an authorized
    request)."""
    return _charge_ids.text()


def key_id_of(raw: str) -> str | None:
    """The public id of a well-formed key (``tg_<id>_<secret>``), or None."""
    m = KEY_RE.match(raw)
    return m.group(1) if m else None


def key_hash(raw: str, pepper: str = "") -> str:
    """What is stored instead of the key: SHA-256, or HMAC-SHA-256 with the pepper."""
    data = raw.encode()
    if pepper:
        return hmac.new(pepper.encode(), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def display_prefix(key_id: str) -> str:
    """How a key is shown in logs, lists and events: enough to recognise, useless to steal."""
    return f"tg_{key_id}_…"


def record_key(hashed: str) -> str:
    return f"{P}key:{hashed}"


def key_index_key(key_id: str) -> str:
    """The key id's index: holds the record's hash (written by the auth service)."""
    return f"{P}id:{key_id}"


def charge_key(charge_id: str) -> str:
    return f"{P}charge:{charge_id}"


def tombstone_key(charge_id: str) -> str:
    return f"{P}refunded:{charge_id}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The authorize script's answer; times in seconds; None where it does not apply."""

    reason: str  # ok invalid_key revoked expired rate_limited no_credits refunded
    limit: int | None
    remaining: int | None
    reset: float | None
    retry_after: float | None
    credits: int | None
    key_id: str
    event: str  # "", "low" or "exhausted"
    invalid_count: int
    charge_id: str | None  # set when charged
    cost: int = 0  # credits debited (ok only)
    plan: str = ""  # the key's plan (ok and rate_limited)

    @property
    def allowed(self) -> bool:
        return self.reason == "ok"


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _opt(v: Any) -> int | None:
    n = int(v)
    return None if n < 0 else n


def outcome(result: list[Any], charge_id: str) -> Outcome:
    reason = _s(result[0])
    reset, retry = _opt(result[3]), _opt(result[4])
    return Outcome(
        reason=reason,
        limit=_opt(result[1]),
        remaining=_opt(result[2]),
        reset=reset / 1000 if reset is not None else None,
        retry_after=retry / 1000 if retry is not None else None,
        credits=_opt(result[5]),
        key_id=_s(result[6]),
        event=_s(result[7]),
        invalid_count=int(result[8]),
        charge_id=charge_id if reason == "ok" else None,
        cost=int(result[9]) if len(result) > 9 else 0,
        plan=_s(result[10]) if len(result) > 10 else "",
    )


def events_for(
    o: Outcome, route: str, client: str, burst_threshold: int, source: str
) -> list[Event]:
    """Events an answer raises: credits low or exhausted, an invalid-key burst (once a window)."""
    out = []
    who = display_prefix(o.key_id)
    # the key id, for the notifier's owner webhook (issue 13): the subject is for people
    owner = {"key_id": o.key_id, "credits": str(o.credits)}
    if o.event == "low":
        out.append(
            Event(
                type=EventType.CREDITS_LOW,
                severity=Severity.WARNING,
                route=route,
                subject=who,
                source=source,
                message=f"key {who} is low on credits ({o.credits} left)",
                attributes=owner,
            )
        )
    elif o.event == "exhausted":
        out.append(
            Event(
                type=EventType.CREDITS_EXHAUSTED,
                severity=Severity.WARNING,
                route=route,
                subject=who,
                source=source,
                message=f"key {who} has used all its credits",
                attributes=owner,
            )
        )
    if o.invalid_count == burst_threshold:
        out.append(
            Event(
                type=EventType.INVALID_KEY_BURST,
                severity=Severity.WARNING,
                route=route,
                subject=client,
                source=source,
                message=f"{o.invalid_count} invalid API keys from {client}",
            )
        )
    return out


class Ledger:
    """Runs the authorize and refund scripts against one Redis."""

    def __init__(self, redis: Any, pepper: str = "") -> None:
        self.redis = redis
        self.pepper = pepper
        self._authorize = LuaScript((files("tollgate_common") / "authorize.lua").read_text())
        self._refund = LuaScript((files("tollgate_common") / "refund.lua").read_text())

    async def authorize(
        self,
        raw_key: str,
        path: str,
        cost: int,
        client: str,
        *,
        charge_ttl: int,
        low_threshold: int,
        invalid_window: int,
        charge_id: str | None = None,
        route: str = "",
    ) -> Outcome:
        """One authorize; ``charge_id`` chosen by the caller (see the module docstring); a
        charge appends its usage event (``route`` in it) to the usage stream in the same step."""
        charge_id = charge_id or new_charge_id()
        hashed = key_hash(raw_key, self.pepper) if key_id_of(raw_key) else "-"
        keys = [
            record_key(hashed),
            f"{P}invalid:{client or '-'}",
            charge_key(charge_id),
            tombstone_key(charge_id),
            USAGE_STREAM_KEY,
        ]
        args = [
            int(time.time() * 1000),
            cost,
            charge_id,
            charge_ttl,
            path,
            low_threshold,
            invalid_window,
            route,
            USAGE_STREAM_MAXLEN,
        ]
        return outcome(await self._authorize(self.redis, keys, args), charge_id)

    async def refund(self, charge_id: str, tombstone_ttl: int = 3600) -> int:
        """Give a charge back exactly once; returns the credits after, or -1 if unknown. Either
        way the charge id is dead from now on: an authorize with it debits nothing. A refund
        appends its usage event to the usage stream in the same step."""
        keys = [charge_key(charge_id), tombstone_key(charge_id), USAGE_STREAM_KEY]
        args = [tombstone_ttl, charge_id, int(time.time() * 1000), USAGE_STREAM_MAXLEN]
        left: int = await self._refund(self.redis, keys, args)
        return left
