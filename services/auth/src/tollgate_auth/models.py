"""The auth service's wire shapes: the authorize RPC and the admin API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tollgate_common.credits import CHARGE_ID_PATTERN, MAX_KEY_CHARS, MAX_PATH_CHARS


class AuthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str = Field(max_length=MAX_KEY_CHARS)
    route: str = Field("", max_length=256)
    path: str = Field("/", max_length=MAX_PATH_CHARS)
    cost: int = Field(1, ge=0)
    client: str = Field("", max_length=64)
    charge_id: str | None = Field(
        None, pattern=CHARGE_ID_PATTERN, description="Chosen by the gateway (refundable by it)."
    )


class Decision(BaseModel):
    """The answer to every authorize call; the gateway maps ``reason`` to HTTP."""

    allowed: bool
    reason: str
    message: str = ""
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    retry_after: float | None = None
    credits_remaining: int | None = None
    charge_id: str | None = None


class RefundRequest(BaseModel):
    charge_id: str = Field(max_length=64)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    rate: float = Field(0, ge=0, description="Requests per second sustained; 0 = unlimited.")
    burst: int = Field(1, ge=1, description="Requests allowed at once.")
    costs: dict[str, int] = Field(
        default_factory=dict, description="Credit cost per path prefix (longest match wins)."
    )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=128)
    credits: int = Field(0, ge=0)
    plan: str = Field("", max_length=63)
    expires_at: float | None = Field(None, description="Unix time; none = never.")


class KeyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=128)
    plan: str | None = Field(None, max_length=63)
    expires_at: float | None = Field(None, description="Unix time; 0 = never.")


class CreditsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: int | None = None
    set: int | None = Field(None, ge=0)


class KeyInfo(BaseModel):
    id: str
    prefix: str
    name: str
    plan: str
    credits: int
    revoked: bool
    expires_at: float | None
    created_at: float


class KeyCreated(KeyInfo):
    key: str = Field(description="The raw key: shown once, never stored.")
