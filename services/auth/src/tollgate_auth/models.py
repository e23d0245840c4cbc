"""The auth service's wire shapes: the authorize RPC and the admin API.

Every number the admin API takes is bounded here, so what reaches Redis is what the ledger
(tollgate_common/ledger/authorize.lua) computes with exactly: Lua numbers are doubles, exact to
2**53, and Redis integers stop at 2**63 - 1, so a balance past either made every later request on
the key an error. Out of bounds is a 422 naming the field, never a 500 or a 503.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tollgate_common.ledger.apikeys import (
    CHARGE_ID_PATTERN,
    MAX_CREDITS,
    MAX_KEY_CHARS,
    MAX_PATH_CHARS,
    MAX_REFUND_ID_CHARS,
    MAX_ROUTE_CHARS,
)
from tollgate_common.ledger.refill import Refill

MAX_EXPIRES_AT = 253_402_300_799.0
"""9999-12-31T23:59:59Z: the latest expiry (Unix seconds) a calendar prints."""

MAX_RATE = 1000.0
"""Requests per second: the ledger counts in milliseconds, so a faster rate is the same as 1000."""

MIN_RATE = 0.001
"""One request per 1000 s; far slower rates overflow the ledger's rate-limit state in Redis (every
request on the key then fails)."""

MAX_BURST = 10_000

Credits = Annotated[int, Field(ge=0, le=MAX_CREDITS)]
Expiry = Annotated[float, Field(ge=0, le=MAX_EXPIRES_AT, allow_inf_nan=False)]
CostPrefix = Annotated[str, Field(pattern=r"^/", max_length=256)]


class AuthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str = Field(max_length=MAX_KEY_CHARS)
    route: str = Field("", max_length=MAX_ROUTE_CHARS)
    path: str = Field("/", max_length=MAX_PATH_CHARS)
    cost: int = Field(1, ge=0)
    client: str = Field("", max_length=64)
    charge_id: str | None = Field(
        None, pattern=CHARGE_ID_PATTERN, description="Chosen by the gateway (refundable by it)."
    )
    cache_hit: bool = Field(False, description="Answered from the gateway's cache (usage).")


class MeRequest(BaseModel):
    """The gateway's ask for a key's own view (``GET /_tollgate/v1/me``): nothing is charged."""

    model_config = ConfigDict(extra="ignore")

    key: str = Field(max_length=MAX_KEY_CHARS)
    client: str = Field("", max_length=64)


class RefundRequest(BaseModel):
    charge_id: str = Field(
        max_length=MAX_REFUND_ID_CHARS,
        description="The charge id of the answer (it carries its key's id: `<key id>-<rest>`).",
    )
    status: Literal["", "4xx", "5xx"] = Field(
        "", description="The status class the client was answered instead (usage records)."
    )


class PlanRefill(BaseModel):
    """A plan's credit refill, applied lazily by the ledger (tollgate_common.ledger.refill says
    how: periods in UTC, one refill per period however many requests cross its boundary)."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=1, le=MAX_CREDITS, description="Credits a refill adds (at most).")
    interval: Literal["hourly", "daily", "monthly"] = Field(
        description="hourly: on the hour; daily: at 00:00 UTC; monthly: on day_of_month."
    )
    day_of_month: int | None = Field(
        None,
        ge=1,
        le=31,
        description="monthly only (default 1): the day at 00:00 UTC; in a shorter month its last "
        "day (31 = the last day of every month).",
    )
    mode: Literal["add", "topup"] = Field(
        "add", description="add: amount on top; topup: up to amount, never past ceiling."
    )
    ceiling: int | None = Field(
        None,
        ge=1,
        le=MAX_CREDITS,
        description="topup only (required): the balance a refill stops at; a balance above it "
        "is left as it is.",
    )

    @model_validator(mode="after")
    def _fields_of_the_mode(self) -> PlanRefill:
        if self.day_of_month is not None and self.interval != "monthly":
            raise ValueError("day_of_month: only for interval monthly")
        if self.mode == "topup" and self.ceiling is None:
            raise ValueError("ceiling: required with mode topup")
        if self.mode == "add" and self.ceiling is not None:
            raise ValueError("ceiling: only for mode topup")
        return self

    def to_ledger(self) -> Refill:
        return Refill(
            amount=self.amount,
            interval=self.interval,
            day_of_month=self.day_of_month or 1,
            mode=self.mode,
            ceiling=self.ceiling or 0,
        )

    @classmethod
    def from_ledger(cls, r: Refill) -> PlanRefill:
        return cls(
            amount=r.amount,
            interval=r.interval,
            day_of_month=r.day_of_month if r.interval == "monthly" else None,
            mode=r.mode,
            ceiling=r.ceiling if r.mode == "topup" else None,
        )


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    rate: float = Field(
        0,
        ge=0,
        le=MAX_RATE,
        allow_inf_nan=False,
        description=f"Requests per second sustained, {MIN_RATE} to {MAX_RATE:g}; 0 = unlimited.",
    )
    burst: int = Field(1, ge=1, le=MAX_BURST, description="Requests allowed at once.")
    costs: dict[CostPrefix, Credits] = Field(
        default_factory=dict,
        max_length=100,
        description="Credit cost per path prefix (longest match wins).",
    )
    refill: PlanRefill | None = Field(None, description="Credits added every interval; none.")

    @field_validator("rate")
    @classmethod
    def _rate_zero_or_in_range(cls, rate: float) -> float:
        if 0 < rate < MIN_RATE:
            raise ValueError(f"rate must be 0 (unlimited) or at least {MIN_RATE}")
        return rate


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=128)
    credits: Credits = 0
    plan: str = Field("", max_length=63)
    expires_at: Expiry | None = Field(None, description="Unix time; none or 0 = never.")


class KeyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=128)
    plan: str | None = Field(None, max_length=63)
    expires_at: Expiry | None = Field(None, description="Unix time; 0 = never.")
    webhook_url: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^(https?://[^\s]+)?$",
        description="The key owner's webhook (credits.low, credits.exhausted, credits.refilled, "
        'key.expiring); "" = none.',
    )
    webhook_secret: str | None = Field(
        None,
        min_length=16,
        max_length=256,
        description="Signing secret of the owner webhook (HMAC-SHA256); write-only, never shown.",
    )
    customer: str | None = Field(
        None,
        max_length=255,
        pattern=r"^[A-Za-z0-9_-]*$",
        description='The key\'s customer in the billing system (Stripe: cus_...); "" = none.',
    )

    @model_validator(mode="after")
    def _webhook_with_its_secret(self) -> KeyPatch:
        # A webhook nobody can verify is worse than none; a secret alone signs nothing.
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("webhook_secret: required with webhook_url")
        if self.webhook_secret is not None and not self.webhook_url:
            raise ValueError("webhook_secret: given without webhook_url")
        return self


class CreditsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: int | None = Field(
        None,
        ge=-MAX_CREDITS,
        le=MAX_CREDITS,
        description=f"Credits to add (negative: take away); the balance stays 0..{MAX_CREDITS}.",
    )
    set: Credits | None = Field(None, description="The new balance.")


class KeyInfo(BaseModel):
    id: str
    prefix: str
    name: str
    plan: str
    credits: int
    revoked: bool
    expires_at: float | None
    created_at: float
    webhook_url: str = ""  # the signing secret is never part of an answer
    customer: str = ""
    next_refill: float | None = Field(
        None,
        description="Unix time the plan's next refill applies (past: due, applied by the key's "
        "next request); none without a refill.",
    )


class KeyCreated(KeyInfo):
    key: str = Field(description="The raw key: shown once, never stored.")


class UsageBucket(BaseModel):
    start: int = Field(description="Unix second the hour or UTC day starts at.")
    counts: dict[str, int] = Field(
        description="requests, charged, refunded, hits, 4xx, 5xx, refilled (credits refills added)."
    )
    routes: dict[str, dict[str, int]] = Field(description="The same counts by route.")


class KeyUsage(BaseModel):
    key_id: str
    start: int = Field(description="Unix second of the first hour read.")
    end: int = Field(description="Unix second the range ends at (exclusive).")
    granularity: str
    total: dict[str, int]
    routes: dict[str, dict[str, int]]
    buckets: list[UsageBucket] = Field(description="Oldest first; empty buckets left out.")


class KeyTotal(BaseModel):
    key_id: str
    prefix: str
    name: str
    total: dict[str, int]


class UsageTotals(BaseModel):
    start: int
    end: int
    keys: list[KeyTotal] = Field(description="Every key with usage in the range.")
