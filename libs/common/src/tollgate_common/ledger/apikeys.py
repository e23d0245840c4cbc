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
# A charge id carries its key's id (``<key id>-<random>``), so a refund knows the slot the charge
# lives on (layout.charge_key). Ids from before had no '-' (hex), so they never look tagged.
_TAGGED_RE = re.compile(r"^([a-z2-7]{8})-")
MAX_REFUND_ID_CHARS = 64 + 9
"""A refund's charge id: an authorize's (CHARGE_ID_PATTERN) with its key's tag put in front
(``tag_charge_id``)."""
MAX_CREDITS = 10**15
"""The most a balance, a top-up, a refill or a cost may be: far inside both the doubles of the Lua
ledger (exact to 2**53) and Redis integers, even with a top-up added to a full balance."""

_charge_ids = UniqueIds(10)


def new_charge_id(key_id: str | None = None) -> str:
    """Unique across processes and workers (uuid4's getrandom() was ~4% of an authorized
    request); tagged with ``key_id``, the key it will charge, when known."""
    raw = _charge_ids.text()
    return f"{key_id}-{raw}" if key_id else raw


def charge_key_id(charge_id: str) -> str | None:
    """The key id a charge id carries, or None (an id from before the tags)."""
    m = _TAGGED_RE.match(charge_id)
    return m.group(1) if m else None


def tag_charge_id(charge_id: str, key_id: str) -> str:
    """The charge id an authorize of key ``key_id`` records: as given when it carries that key's
    id, else with it put in front (a caller that made its own untagged id learns the tagged one
    from the answer, Decision.charge_id)."""
    return charge_id if charge_key_id(charge_id) == key_id else f"{key_id}-{charge_id}"


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
