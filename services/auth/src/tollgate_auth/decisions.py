"""Turning the authorize script's answer into a Decision and its events (pure)."""

from __future__ import annotations

from typing import Any

from tollgate_auth.keys import display_prefix
from tollgate_auth.models import Decision
from tollgate_common.events import Event, EventType, Severity

MESSAGES = {
    "ok": "",
    "invalid_key": "unknown API key",
    "revoked": "this API key has been revoked",
    "expired": "this API key has expired",
    "rate_limited": "rate limit exceeded",
    "no_credits": "not enough credits for this path",
}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _opt(v: Any) -> int | None:
    n = int(v)
    return None if n < 0 else n


def decision(result: list[Any], charge_id: str) -> Decision:
    reason = _s(result[0])
    reset, retry = _opt(result[3]), _opt(result[4])
    return Decision(
        allowed=reason == "ok",
        reason=reason,
        message=MESSAGES.get(reason, reason),
        limit=_opt(result[1]),
        remaining=_opt(result[2]),
        reset=reset / 1000 if reset is not None else None,
        retry_after=retry / 1000 if retry is not None else None,
        credits_remaining=_opt(result[5]),
        charge_id=charge_id if reason == "ok" else None,
    )


def events_for(result: list[Any], route: str, client: str, burst_threshold: int) -> list[Event]:
    """Events this answer should raise: credits low or exhausted, an invalid-key burst."""
    key_id, event, invalid_count = _s(result[6]), _s(result[7]), int(result[8])
    out = []
    if event == "low":
        out.append(
            Event(
                type=EventType.CREDITS_LOW,
                severity=Severity.WARNING,
                route=route,
                subject=display_prefix(key_id),
                source="auth",
                message=f"key {display_prefix(key_id)} is low on credits ({int(result[5])} left)",
            )
        )
    elif event == "exhausted":
        out.append(
            Event(
                type=EventType.CREDITS_EXHAUSTED,
                severity=Severity.WARNING,
                route=route,
                subject=display_prefix(key_id),
                source="auth",
                message=f"key {display_prefix(key_id)} has used all its credits",
            )
        )
    if invalid_count == burst_threshold:  # exactly at the threshold: once per window
        out.append(
            Event(
                type=EventType.INVALID_KEY_BURST,
                severity=Severity.WARNING,
                route=route,
                subject=client,
                source="auth",
                message=f"{invalid_count} invalid API keys from {client}",
            )
        )
    return out
