"""The settings base every service's one settings class extends.

Each service defines exactly one subclass with its own env prefix (``TOLLGATE_GATEWAY_``, ...),
validates it once at start-up and passes it down; nothing else reads ``os.environ``. Helm values map
onto these variables one to one.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tollgate_common.redis.url import parse_redis_url

S = TypeVar("S", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """Settings every service has."""

    # hide_input_in_errors: a rejected value must not reach a log (a Redis URL holds a password).
    model_config = SettingsConfigDict(
        env_prefix="TOLLGATE_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL: redis[s]://[[user]:password@]host[:port][/db]; rediss:// is TLS "
        "verified against the system trust store (SSL_CERT_FILE adds a CA).",
    )
    log_level: str = Field("INFO", description="Python log level name.")
    log_json: bool = Field(False, description="Log one JSON object per line (for log shippers).")

    @field_validator("redis_url")
    @classmethod
    def _redis_url_accepted(cls, url: str) -> str:
        parse_redis_url(url, setting=env_name(cls, "redis_url"))  # RedisUrlError is a ValueError
        return url


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable a settings field is read from."""
    return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


def load_settings(cls: type[S], program: str) -> S:
    """The service's settings from its environment, or exit with one clear line per problem
    (the setting's variable and what is wrong, never the rejected value) instead of a traceback."""
    try:
        return cls()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = env_name(cls, ".".join(str(p) for p in err["loc"]))
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(msg if msg.startswith(where) else f"{where}: {msg}")
        sys.exit(f"{program}: invalid settings: " + "; ".join(lines))
