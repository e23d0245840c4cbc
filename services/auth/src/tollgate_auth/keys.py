"""API key format and hashing (pure).

A key reads ``tg_<id>_<secret>``: the id (8 characters) is public, shown in lists and logs, and
names the key in the admin API; the secret never leaves the client after creation. Only a hash of
the whole key is stored, so a leaked database yields no usable key. Lookups are by hash: no
comparison of secret material happens in our code, so there is no timing side channel to guard.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_RE = re.compile(r"^tg_([a-z2-7]{8})_([A-Za-z0-9_-]{32,64})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_key() -> tuple[str, str]:
    """A fresh (key id, raw key)."""
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return key_id, f"tg_{key_id}_{secrets.token_urlsafe(32)[:43]}"


def key_id_of(raw: str) -> str | None:
    """The public id of a well-formed key, or None."""
    m = KEY_RE.match(raw)
    return m.group(1) if m else None


def key_hash(raw: str, pepper: str = "") -> str:
    data = raw.encode()
    if pepper:
        return hmac.new(pepper.encode(), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def display_prefix(key_id: str) -> str:
    """How a key is shown in logs and lists: enough to recognise, useless to an attacker."""
    return f"tg_{key_id}_…"


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of the admin token."""
    return hmac.compare_digest(given.encode(), expected.encode())
