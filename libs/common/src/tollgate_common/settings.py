"""The settings base every service's one settings class extends.

Each service defines exactly one subclass with its own env prefix (``TOLLGATE_GATEWAY_``, ...),
validates it once at start-up and passes it down; nothing else reads ``os.environ``. Helm values map
onto these variables one to one.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every service has."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", extra="ignore", frozen=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis connection URL.")
    log_level: str = Field("INFO", description="Python log level name.")
    log_json: bool = Field(False, description="Log one JSON object per line (for log shippers).")
