"""The answer of an authorize: ``Decision``, its reasons with their client messages, the parse of
the script's reply and the wire form of the auth RPC (pure).

Adding a field to the answer touches this module and authorize.lua: ``Decision`` and
``from_script`` here, the script's reply there; the RPC's JSON follows ``Decision`` by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# Reasons: the script's (ok .. refunded) and the gateway's own (missing_key .. auth_error; the
# last two: the outcome is unknown, the request may have been charged).
MESSAGES = {
    "ok": "",
    "invalid_key": "unknown API key",
    "revoked": "this API key has been revoked",
    "expired": "this API key has expired",
    "rate_limited": "rate limit exceeded; retry after the time in Retry-After",
    "no_credits": "this API key has no credits left for this path",
    "refunded": "this charge id was refunded already",
    "missing_key": "an API key is required: pass ?api_key=... or an X-API-Key header",
    "rejected": "malformed request",
    "unavailable": "the auth service is unavailable; try again shortly",
    "auth_error": "no decision from auth",
}
UNKNOWN_OUTCOME = frozenset({"unavailable", "auth_error"})  # may have charged


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to every authorize, whoever asked; times in seconds, None where it does not
    apply."""

    allowed: bool
    reason: str = "ok"
    message: str = ""
    limit: int | None = None  # the plan's burst: requests allowed at once, and per ``window``
    remaining: int | None = None  # requests left before the rate limit bites
    reset: float | None = None  # seconds until the limit is fully reset
    window: float | None = None  # seconds the plan takes to refill its burst: limit / rate
    retry_after: float | None = None  # seconds, when rate limited
    credits_remaining: int | None = None
    charge_id: str | None = None  # set when charged: refundable by it
    cost: int = 0  # credits debited (the plan's price for the path, else the route's)
    plan: str = ""  # the key's plan, when the script read it
    next_refill: float | None = None  # Unix seconds of the plan's next credit refill
    # What stays in the process that asked (not on the wire):
    key_id: str = ""
    event: str = ""  # "", "low" or "exhausted": credits crossed a threshold
    refilled: int = 0  # credits a refill applied by this step added (credits.refilled)
    invalid_count: int = 0  # invalid keys from this client in the window
    sent: bool = True  # False: the ask never left the gateway, so it cannot have charged


LOCAL_FIELDS = frozenset({"key_id", "event", "refilled", "invalid_count", "sent"})
WIRE_FIELDS = tuple(f.name for f in fields(Decision) if f.name not in LOCAL_FIELDS)
_WIRE = frozenset(WIRE_FIELDS)


def denied(reason: str, **more: Any) -> Decision:
    """A refusal with its message."""
    return Decision(allowed=False, reason=reason, message=MESSAGES.get(reason, reason), **more)


def to_wire(d: Decision) -> dict[str, Any]:
    """The auth RPC's JSON answer: the wire fields that apply."""
    return {n: v for n in WIRE_FIELDS if (v := getattr(d, n)) is not None}


def from_wire(data: dict[str, Any]) -> Decision:
    """The auth RPC's answer read back; TypeError when it is not one."""
    return Decision(**{k: v for k, v in data.items() if k in _WIRE})


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _opt(v: Any) -> int | None:
    n = int(v)
    return None if n < 0 else n


def _seconds(v: Any) -> float | None:
    ms = _opt(v)
    return ms / 1000 if ms is not None else None


def from_script(r: list[Any], charge_id: str) -> Decision:
    """The authorize script's reply as a Decision. Its order (authorize.lua's header): reason,
    limit, remaining, reset_ms, retry_after_ms, credits, key_id, event, invalid_count, and for ok,
    rate_limited and no_credits also cost, plan, window_ms, refilled and next_refill_ms; -1
    stands for None. Spelled out rather than looped: this runs on every request."""
    reason = _s(r[0])
    ok = reason == "ok"
    long = len(r) > 12
    return Decision(
        allowed=ok,
        reason=reason,
        message=MESSAGES.get(reason, reason),
        limit=_opt(r[1]),
        remaining=_opt(r[2]),
        reset=_seconds(r[3]),
        retry_after=_seconds(r[4]),
        credits_remaining=_opt(r[5]),
        charge_id=charge_id if ok else None,
        cost=int(r[9]) if len(r) > 9 else 0,
        plan=_s(r[10]) if len(r) > 10 else "",
        window=_seconds(r[11]) if len(r) > 11 else None,
        next_refill=_seconds(r[13]) if long else None,
        key_id=_s(r[6]),
        event=_s(r[7]),
        refilled=int(r[12]) if long else 0,
        invalid_count=int(r[8]),
    )
