"""The ledger's settings: one block, included by both services' settings classes.

The auth service and the gateway (in ``AUTH_MODE=redis``) run the same script and must agree on
these; the chart renders one ``ledger:`` values block into both deployments, so they cannot
disagree there. Each service still reads them under its own env prefix (``TOLLGATE_AUTH_...``,
``TOLLGATE_GATEWAY_...``): one settings class per service.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LedgerSettings(BaseModel):
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
    usage_retention_days: int = Field(
        400, ge=1, le=3660, description="How long hourly usage records are kept in Redis."
    )
