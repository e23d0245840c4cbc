"""Turning the ledger's Outcome into the authorize RPC's answer (pure)."""

from __future__ import annotations

from tollgate_auth.models import Decision
from tollgate_common.credits import Outcome

MESSAGES = {
    "ok": "",
    "invalid_key": "unknown API key",
    "revoked": "this API key has been revoked",
    "expired": "this API key has expired",
    "rate_limited": "rate limit exceeded",
    "no_credits": "not enough credits for this path",
    "refunded": "this charge id was refunded already",
}


def decision(o: Outcome) -> Decision:
    return Decision(
        allowed=o.allowed,
        reason=o.reason,
        message=MESSAGES.get(o.reason, o.reason),
        limit=o.limit,
        remaining=o.remaining,
        reset=o.reset,
        retry_after=o.retry_after,
        credits_remaining=o.credits,
        charge_id=o.charge_id,
        cost=o.cost,
        plan=o.plan,
    )
