"""Charge ids carry their key's id (pure): a refund finds the key's Redis Cluster slot."""

from __future__ import annotations

import re

from tollgate_common.ledger.apikeys import (
    CHARGE_ID_PATTERN,
    MAX_REFUND_ID_CHARS,
    charge_key_id,
    new_charge_id,
    tag_charge_id,
)


def test_a_new_charge_id_carries_its_key() -> None:
    """``<key id>-<random>``, within the authorize RPC's pattern, unique."""
    ids = {new_charge_id("abcdefgh") for _ in range(1000)}
    assert len(ids) == 1000
    for cid in ids:
        assert re.match(CHARGE_ID_PATTERN, cid)
        assert charge_key_id(cid) == "abcdefgh"


def test_an_old_charge_id_carries_none() -> None:
    """The ids of before (hex, no '-') and ids of no key read as untagged."""
    assert charge_key_id(new_charge_id()) is None
    assert charge_key_id("abcdef0123456789abcd7") is None
    assert charge_key_id("ABCDEFGH-1") is None


def test_an_id_not_of_this_key_is_tagged_with_it() -> None:
    """Untagged or another key's: this key's id in front; this key's: unchanged."""
    assert tag_charge_id("abcdefgh-xyz", "abcdefgh") == "abcdefgh-xyz"
    assert tag_charge_id("0123456789", "abcdefgh") == "abcdefgh-0123456789"
    assert tag_charge_id("zzzzzzzz-1", "abcdefgh") == "abcdefgh-zzzzzzzz-1"
    longest = tag_charge_id("x" * 64, "abcdefgh")
    assert len(longest) == MAX_REFUND_ID_CHARS
    assert charge_key_id(longest) == "abcdefgh"
