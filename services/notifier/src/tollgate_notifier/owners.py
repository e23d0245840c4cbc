"""Owner webhooks: a key's own webhook hears its credits.low, credits.exhausted, credits.refilled
and key.expiring, signed the way Stripe signs its webhooks (issue 13).

``Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``: the receiver
recomputes the HMAC over the timestamp and the raw body with the key's secret, compares in
constant time and refuses an old ``t`` (replays). The URL and secret live in the key's record
(set through auth's admin API); the secret never reaches a log line, a metric or an error text.
Its sink (sinks.OwnerWebhookSink) is one of the notifier consumer's, so it has its retries, its
per-notification dedup (``Idempotency-Key``, the notification id, also the body's ``id``) and its
dead letters.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from tollgate_common.contracts.events import EventType
from tollgate_notifier.notification import Notification

OWNER_TYPES = frozenset(
    t.value
    for t in (
        EventType.CREDITS_LOW,
        EventType.CREDITS_EXHAUSTED,
        EventType.CREDITS_REFILLED,
        EventType.KEY_EXPIRING,
    )
)
SIGNATURE_HEADER = "Tollgate-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def owner_payload(n: Notification, created: int) -> bytes:
    """The JSON body an owner receives."""
    credits = n.attributes.get("credits", "")
    data: dict[str, object] = {
        "key_id": n.attributes.get("key_id", ""),
        "credits": _int(credits),
        "route": n.route,
        "message": n.message,
    }
    if "expires_at" in n.attributes:  # key.expiring: when (Unix seconds)
        data["expires_at"] = _int(n.attributes["expires_at"])
    doc = {
        "id": n.id,
        "type": n.type,
        "created": created,
        "data": data,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _int(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None
