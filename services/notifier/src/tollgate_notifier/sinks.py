"""Where notifications go: the log, email over SMTP (aiosmtplib), a webhook (httpx), and a key's
owner webhook (signed, owners.py).

A sink raises SinkError when a delivery did not happen; the consumer retries and, in the end,
dead-letters. Credentials never appear in a log line or an error message.
"""

from __future__ import annotations

import logging
import time
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import quote

import aiosmtplib
import httpx

from tollgate_common.redis.commands import Client
from tollgate_notifier.keyrecords import key_fields
from tollgate_notifier.notification import Notification
from tollgate_notifier.owners import SIGNATURE_HEADER, owner_payload, signature
from tollgate_notifier.settings import NotifierSettings

log = logging.getLogger("tollgate.notifications")


class SinkError(Exception):
    pass


class Sink(Protocol):
    name: str

    async def send(self, n: Notification) -> None: ...

    async def aclose(self) -> None: ...


# A severity the notifier does not know (a newer producer) still reaches the log, as a warning.
LEVELS = {"critical": logging.CRITICAL, "warning": logging.WARNING, "info": logging.INFO}


def log_level(n: Notification) -> int:
    """The log level of a notification: its severity's, and INFO once the group is resolved."""
    if n.status == "resolved":
        return logging.INFO
    return LEVELS.get(n.severity, logging.WARNING)


class LogSink:
    name = "log"

    async def send(self, n: Notification) -> None:
        log.log(
            log_level(n),
            "%s: %s (%d events)",
            n.title,
            n.message,
            n.count,
            extra={"notification": n.id, "group": n.group, "status": n.status},
        )

    async def aclose(self) -> None:
        return None


class EmailSink:
    name = "email"

    def __init__(self, s: NotifierSettings) -> None:
        self.s = s

    async def send(self, n: Notification) -> None:
        msg = EmailMessage()
        msg["From"] = self.s.smtp_from
        msg["To"] = ", ".join(self.s.smtp_to)
        msg["Subject"] = n.title
        msg["X-Tollgate-Notification"] = n.id
        msg.set_content(n.text())
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.s.smtp_host,
                port=self.s.smtp_port,
                username=self.s.smtp_username or None,
                password=self.s.smtp_password or None,
                start_tls=self.s.smtp_starttls if self.s.smtp_username else None,
                timeout=self.s.send_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SinkError(
                f"smtp {self.s.smtp_host}:{self.s.smtp_port}: {type(exc).__name__}"
            ) from exc

    async def aclose(self) -> None:
        return None


class WebhookSink:
    name = "webhook"

    def __init__(self, s: NotifierSettings) -> None:
        self.url = s.webhook_url
        self.format = s.webhook_format
        self.client = httpx.AsyncClient(timeout=s.send_timeout_seconds)

    def payload(self, n: Notification) -> dict[str, object]:
        if self.format == "slack":  # Slack's incoming-webhook shape
            return {"text": n.text()}
        return n.model_dump()

    async def send(self, n: Notification) -> None:
        try:
            r = await self.client.post(
                self.url, json=self.payload(n), headers={"Idempotency-Key": quote(n.id, safe="")}
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"webhook: {type(exc).__name__}") from exc
        if not r.is_success:
            raise SinkError(f"webhook answered {r.status_code}")

    async def aclose(self) -> None:
        await self.client.aclose()


class OwnerWebhookSink:
    name = "owner"

    def __init__(self, redis: Client, s: NotifierSettings) -> None:
        self.redis = redis
        self.client = httpx.AsyncClient(timeout=s.send_timeout_seconds)

    async def send(self, n: Notification) -> None:
        key_id = n.attributes.get("key_id", "")
        url, secret = await self._webhook(key_id) if key_id else ("", "")
        if not url or not secret:
            return  # the key has no owner webhook: nothing to deliver
        now = int(time.time())
        body = owner_payload(n, now)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(secret, now, body),
            "Idempotency-Key": quote(n.id, safe=""),
        }
        try:
            r = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkError(f"owner webhook: {type(exc).__name__}") from exc
        if not r.is_success:
            raise SinkError(f"owner webhook answered {r.status_code}")

    async def _webhook(self, key_id: str) -> tuple[str, str]:
        url, secret = await key_fields(self.redis, key_id, "webhook_url", "webhook_secret")
        return (url or b"").decode(), (secret or b"").decode()

    async def aclose(self) -> None:
        await self.client.aclose()


def build_sinks(s: NotifierSettings, redis: Client | None = None) -> dict[str, Sink]:
    """The configured sinks; with ``redis``, the owner webhooks too (their URLs are per key)."""
    sinks: dict[str, Sink] = {"log": LogSink()}
    if redis is not None:
        sinks["owner"] = OwnerWebhookSink(redis, s)
    if s.smtp_host and s.smtp_to:
        sinks["email"] = EmailSink(s)
    if s.webhook_url:
        sinks["webhook"] = WebhookSink(s)
    return sinks
