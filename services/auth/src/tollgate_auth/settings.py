"""The auth service's one settings class (env prefix ``TOLLGATE_AUTH_``)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from tollgate_common.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_AUTH_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", description="Listen address.")
    port: int = Field(8081, ge=1, le=65535, description="Listen port.")
    workers: int = Field(1, ge=1, description="Worker processes.")
    admin_token: str = Field("", description="Bearer token of the admin API (required).")
    dev_mode: bool = Field(False, description="Allow start without an admin token (one is made).")
    key_pepper: str = Field(
        "", description="Secret mixed into stored key hashes (HMAC); changing it voids all keys."
    )
    credits_low_threshold: int = Field(
        10, ge=0, description="A key crossing below this many credits emits credits.low."
    )
    invalid_key_burst: int = Field(
        20, ge=1, description="Invalid keys from one client address in the window: an event."
    )
    invalid_key_window_seconds: int = Field(
        60, ge=1, description="Window of the invalid-key burst count."
    )
    charge_ttl_seconds: int = Field(
        3600, ge=60, description="How long a charge can be refunded (gateway failure path)."
    )

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
