"""The auth service's one settings class (env prefix ``TOLLGATE_AUTH_``)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from tollgate_common.ledger.settings import LedgerSettings
from tollgate_common.settings import ServiceSettings


class AuthSettings(LedgerSettings, ServiceSettings):
    """The ledger's settings (key pepper, thresholds, TTLs) come from LedgerSettings."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_AUTH_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", description="Listen address.")
    port: int = Field(8081, ge=1, le=65535, description="Listen port.")
    workers: int = Field(1, ge=1, description="Worker processes.")
    admin_token: str = Field("", description="Bearer token of the admin API (required).")
    dev_mode: bool = Field(False, description="Allow start without an admin token (one is made).")

    @model_validator(mode="after")
    def _token_required(self) -> AuthSettings:
        if not self.admin_token and not self.dev_mode:
            raise ValueError(
                "TOLLGATE_AUTH_ADMIN_TOKEN is required (set TOLLGATE_AUTH_DEV_MODE=true for a "
                "generated development token)"
            )
        if self.admin_token and len(self.admin_token) < 16:
            raise ValueError("TOLLGATE_AUTH_ADMIN_TOKEN must be at least 16 characters")
        return self
