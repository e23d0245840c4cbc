"""The gateway's one settings class (env prefix ``TOLLGATE_GATEWAY_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tollgate_common.ledger.settings import LedgerSettings
from tollgate_common.settings import ServiceSettings


class GatewaySettings(LedgerSettings, ServiceSettings):
    """The ledger's settings (used in redis mode) come from LedgerSettings, as auth's do."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_GATEWAY_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", description="Listen address.")
    port: int = Field(8080, ge=1, le=65535, description="Listen port.")
    admin_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of /metrics and /routes; 0 = the main port. When set, the main port "
        "serves only /api/v1, /_tollgate/v1/me, /healthz and /readyz (the chart sets 9090).",
    )
    workers: int = Field(1, ge=1, description="Worker processes (scale with pods in Kubernetes).")
    routes_file: str = Field(
        "", description="ApiBackend YAML file; empty = follow the operator's table in Redis."
    )
    table_poll_seconds: float = Field(
        1.0, gt=0, description="Redis table poll interval (a backstop for lost notifications)."
    )
    auth_url: str = Field("", description="Auth service base URL; empty = no auth (open proxy).")
    auth_timeout_seconds: float = Field(2.0, gt=0, description="Bound on one authorize call.")
    auth_mode: Literal["http", "redis"] = Field(
        "http",
        description="http: ask the auth service; redis: run its ledger script here (no hop; "
        "needs KEY_PEPPER and the same Redis as auth).",
    )
    refund_sweep_seconds: float = Field(
        10.0, gt=0, description="How often refunds parked in Redis (by any gateway) are retried."
    )
    refund_spool_file: str = Field(
        "",
        description="Local file for refunds owed while Redis is down (kept across a restart of "
        "this gateway); empty = off. The chart sets /tmp/refunds.spool (the pod's emptyDir).",
    )
    cache_local_entries: int = Field(
        10_000, ge=0, description="In-process cache tier size in entries (0 = off)."
    )
    cache_local_bytes: int = Field(64 << 20, ge=0, description="In-process cache tier size cap.")
    redis_backoff_seconds: float = Field(
        2.0, gt=0, description="After a Redis error, the cache is bypassed for this long."
    )
    max_request_body_bytes: int = Field(1 << 20, ge=0, description="Larger bodies get 413.")
    response_buffer_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Upstream bodies up to this are read whole (cached, checked by successWhen); "
        "larger ones stream to the client with back-pressure, never held whole (not cached).",
    )
    upstream_connect_timeout_seconds: float = Field(
        5.0, gt=0, description="Bound on opening one upstream connection."
    )
    upstream_max_connections: int = Field(256, ge=1, description="Per upstream origin.")
    events_enabled: bool = Field(True, description="Append upstream failures to the event stream.")
    trust_forwarded_for: bool = Field(
        False, description="Append to an incoming X-Forwarded-For instead of replacing it."
    )
    access_log: bool = Field(
        False, description="One log line per request, path without query (costs throughput)."
    )
    keep_alive_seconds: float = Field(
        5.0, gt=0, description="An idle client connection is closed after this long."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A request head must arrive whole within this of its first byte, however "
        "it trickles in (slowloris); past it: 408 and closed.",
    )
    max_connections_per_client: int = Field(
        512,
        ge=0,
        description="Open connections one client address may hold; one more gets 503 and is "
        "closed (0 = no cap). Behind a proxy or a SNAT every client shares its address: raise it.",
    )
    max_header_bytes: int = Field(
        64 << 10, ge=1024, description="Request line plus headers; larger gets 431."
    )
    send_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="A client taking no byte of a streamed answer for this long is closed (it "
        "holds an upstream connection).",
    )
    shutdown_grace_seconds: float = Field(
        25.0, ge=0, description="On SIGTERM, requests in progress get this long to finish."
    )
