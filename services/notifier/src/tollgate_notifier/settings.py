"""The notifier's one settings class (env prefix ``TOLLGATE_NOTIFIER_``)."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tollgate_common.settings import ServiceSettings

DEFAULT_ROUTING = {
    "critical": ["log", "email", "webhook"],
    "warning": ["log", "email", "webhook"],
    "info": ["log", "webhook"],
}


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_NOTIFIER_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", description="Health and metrics listen address.")
    port: int = Field(8082, ge=1, le=65535, description="Health and metrics port.")
    group: str = Field("tollgate-notifier", description="Redis consumer group.")
    consumer: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Consumer name (unique per replica; default host-pid).",
    )
    batch: int = Field(100, ge=1, description="Entries read per XREADGROUP.")
    block_ms: int = Field(1000, ge=1, description="XREADGROUP block time.")
    claim_idle_ms: int = Field(
        30_000, ge=100, description="Pending entries idle this long are reclaimed (crashed peer)."
    )
    max_attempts: int = Field(5, ge=1, description="Delivery attempts before dead-lettering.")
    backoff_seconds: float = Field(2.0, gt=0, description="First retry delay (doubles).")
    send_timeout_seconds: float = Field(10.0, gt=0, description="Bound on one sink delivery.")
    dead_letter_stream: str = Field("tollgate:events:dead", description="Where failures go.")
    repeat_interval_seconds: float = Field(
        3600, gt=0, description="A still-firing group is notified again after this long."
    )
    trim_interval_seconds: float = Field(30, gt=0, description="How often the stream is trimmed.")
    routing: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTING),
        description="Event type or severity -> sinks (JSON; a type entry wins). Unconfigured "
        "sinks are skipped.",
    )
    smtp_host: str = Field("", description="SMTP server; empty = no email sink.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_username: str = Field("", description="SMTP user; set = log in (STARTTLS first).")
    smtp_password: str = Field("", description="SMTP password (from a Secret).")
    smtp_starttls: bool = Field(True, description="Upgrade with STARTTLS when offered.")
    smtp_from: str = Field("tollgate@localhost", description="From address.")
    smtp_to: list[str] = Field(default_factory=list, description="Recipients (JSON list).")
    webhook_url: str = Field("", description="Webhook URL; empty = no webhook sink.")
    webhook_format: str = Field("json", pattern="^(json|slack)$", description="json or slack.")

    # --- key.expiring (issue 13): the expiry sweeper warns a key's owner this long before expiry
    key_expiring_before_seconds: float = Field(
        7 * 86400,
        ge=0,
        le=366 * 86400,
        description="A key expiring within this many seconds gets one key.expiring (per key and "
        "expiry); 0 = never warn.",
    )
    expiry_sweep_interval_seconds: float = Field(
        60, gt=0, le=86400, description="How often the expiry sweeper reads the due keys."
    )

    # --- usage export (issue 13): the usage stream to an OpenMeter or Stripe endpoint
    usage_export_url: str = Field(
        "",
        description="Base URL of the billing endpoint the usage events go to (OpenMeter: "
        "https://openmeter.example, /api/v1/events is appended; Stripe: https://api.stripe.com, "
        "/v1/billing/meter_events is appended); empty = no export.",
    )
    usage_export_format: str = Field(
        "openmeter",
        pattern="^(openmeter|stripe)$",
        description="openmeter (CloudEvents, batched) or stripe (meter events, form-encoded).",
    )
    usage_export_token: str = Field(
        "",
        description="Bearer token for the endpoint (from a Secret; Stripe: the secret key); "
        "empty = none.",
    )
    usage_source: str = Field(
        "tollgate", min_length=1, max_length=256, description="The CloudEvents source."
    )
    usage_event_type: str = Field(
        "tollgate.usage",
        min_length=1,
        max_length=256,
        description="The CloudEvents type (OpenMeter meters select on it); data.kind says "
        "charge or refund.",
    )
    usage_stripe_event_name: str = Field(
        "tollgate_credits",
        min_length=1,
        max_length=100,
        description="The Stripe meter's event_name; the value is the credits charged (a refund "
        "cancels its charge's meter event).",
    )
    usage_group: str = Field("tollgate-usage-export", description="The exporter's consumer group.")
    usage_batch: int = Field(100, ge=1, le=1000, description="Events per OpenMeter POST.")
    usage_max_attempts: int = Field(
        8, ge=1, le=100, description="Delivery attempts of a batch before dead-lettering it."
    )
    usage_backoff_seconds: float = Field(1.0, gt=0, description="First retry delay (doubles).")
    usage_backoff_max_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest retry delay; at most half of claim_idle_ms (a batch waiting longer "
        "would look abandoned to the other replicas).",
    )
    usage_dead_letter_stream: str = Field(
        "tollgate:usage:dead", description="Where usage events go after the last attempt."
    )
    # A sweep reads every key's outbox (one pipelined ZRANGEBYSCORE per key): at 1,000,000 keys
    # and 300 s that is ~3,300 reads a second on Redis, at 30 s ten times as many.
    usage_outbox_interval_seconds: float = Field(
        300,
        gt=0,
        le=3600,
        description="How often the outbox sweeper re-sends the usage events that never reached "
        "the stream (one replica at a time; each sweep reads every key's outbox).",
    )
    usage_outbox_grace_seconds: float = Field(
        60,
        gt=0,
        le=86400,
        description="An outbox entry this much older than what the exporter has read is re-sent "
        "(its XADD never happened).",
    )
