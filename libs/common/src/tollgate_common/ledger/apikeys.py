"""API keys and charge ids: their format, the stored hash, and the bounds of an authorize (pure)."""

from __future__ import annotations

import hashlib
import hmac
import re

from tollgate_common.ids import UniqueIds

KEY_RE = re.compile(r"^tg_([a-z2-7]{8})_([A-Za-z0-9_-]{32,64})$")
# What an authorize may carry: longer is the client's error (401 for a key, 414 for a path), which
# the gateway answers itself, in both auth modes, before it asks.
MAX_KEY_CHARS = 256
MAX_PATH_CHARS = 2048
MAX_ROUTE_CHARS = 256
CHARGE_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
MAX_CREDITS = 10**15
"""The most a balance, a top-up, a refill or a cost may be: far inside both the doubles of the Lua
ledger (exact to 2**53) and Redis integers, even with a top-up added to a full balance."""

_charge_ids = UniqueIds(10)


def new_charge_id() -> str:
    """Unique across processes and workers (uuid4's getrandom() was ~4% of an authorized
    request)."""
    return _charge_ids.text()


def key_id_of(raw: str) -> str | None:
    """The public id of a well-formed key (``tg_<id>_<secret>``), or None."""
    m = KEY_RE.match(raw)
    return m.group(1) if m else None


def key_hash(raw: str, pepper: str = "") -> str:
    """What is stored instead of the key: SHA-256, or HMAC-SHA-256 with the pepper."""
    data = raw.encode()
    if pepper:
        return hmac.new(pepper.encode(), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def display_prefix(key_id: str) -> str:
    """How a key is shown in logs, lists and events: enough to recognise, useless to steal."""
    return f"tg_{key_id}_…"
