"""Key format, hashing and the admin token comparison."""

from __future__ import annotations

from tollgate_auth.keys import display_prefix, key_hash, key_id_of, new_key, same_token


def test_new_keys_are_well_formed_and_unique() -> None:
    """A new key parses back to its id; two keys differ."""
    key_id, raw = new_key()
    assert key_id_of(raw) == key_id
    assert raw.startswith(f"tg_{key_id}_")
    assert new_key()[1] != raw


def test_malformed_keys_have_no_id() -> None:
    """Anything not of the key shape is refused before Redis."""
    for raw in ["", "tg_short_x", "sk_live_abc", "tg_ABCDEFGH_" + "x" * 40]:
        assert key_id_of(raw) is None


def test_hash_hides_the_key_and_depends_on_pepper() -> None:
    """The stored hash contains no part of the key; the pepper changes it."""
    _, raw = new_key()
    h = key_hash(raw)
    assert raw not in h
    assert raw.split("_", 2)[2] not in h  # the secret: "_" is in its alphabet too
    assert key_hash(raw, "pepper") != h


def test_display_prefix_reveals_no_secret() -> None:
    """Logs and lists show the id only."""
    key_id, raw = new_key()
    assert display_prefix(key_id) == f"tg_{key_id}_…"
    assert raw.split("_", 2)[2] not in display_prefix(key_id)


def test_same_token() -> None:
    """Token comparison is exact."""
    assert same_token("a" * 20, "a" * 20)
    assert not same_token("a" * 20, "a" * 19 + "b")
