"""API key format and hashing (pure).

A key reads ``tg_<id>_<secret>``: the id (8 characters) is public, shown in lists and logs, and
names the key in the admin API; the secret never leaves the client after creation. Only a hash of
the whole key is stored, so a leaked database yields no usable key. Lookups are by hash: no
comparison of secret material happens in our code, so there is no timing side channel to guard.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from tollgate_common.ledger.apikeys import KEY_RE, display_prefix, key_hash, key_id_of

__all__ = ["KEY_RE", "display_prefix", "key_hash", "key_id_of", "new_key", "same_token"]

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_key() -> tuple[str, str]:
    """A fresh (key id, raw key)."""
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return key_id, f"tg_{key_id}_{secrets.token_urlsafe(32)[:43]}"


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of the admin token: the digests are compared, so not even the
    token's length shows in the time taken (compare_digest returns early on unequal lengths)."""
    return hmac.compare_digest(_digest(given), _digest(expected))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
