"""Redis Cluster's slot arithmetic (slots.py), checked against a real server's CLUSTER KEYSLOT."""

from __future__ import annotations

import random

import redis

from tollgate_common.redis.slots import (
    SLOTS,
    Redirect,
    command_key,
    key_slot,
    redirect,
    slot_owners,
)

EDGE_KEYS = [
    "",
    "{",
    "}",
    "{}",
    "{}x",
    "x{}",
    "{}{a}",
    "{a}{b}",
    "a{b}c",
    "{{a}}",
    "{a",
    "a}",
    "}{a}",
    "a{b",
    "a{}b{c}",
    "{a}}",
    "tollgate:auth:{k1}:key:abc",
    "tollgate:usage:{k1}:1800000000",
    "ünïcode{ключ}",
]


def test_key_slots_match_the_server(cluster_redis_url: str) -> None:
    """Edge cases of hash tags and 500 random keys hash as CLUSTER KEYSLOT says."""
    rnd = random.Random(13)
    alphabet = "ab{}:x"
    keys = EDGE_KEYS + ["".join(rnd.choices(alphabet, k=rnd.randint(0, 12))) for _ in range(500)]
    client = redis.Redis.from_url(cluster_redis_url)
    try:
        for key in keys:
            assert key_slot(key) == client.execute_command("CLUSTER", "KEYSLOT", key), key
            assert key_slot(key.encode()) == key_slot(key)
    finally:
        client.close()


def test_a_tag_puts_keys_on_one_slot() -> None:
    """Everything inside the first non-empty tag decides; an empty tag does not count."""
    assert key_slot("{user1}:a") == key_slot("{user1}:b") == key_slot("user1")
    assert key_slot("{}a") != key_slot("{}b")


def test_command_keys() -> None:
    """GET/SET route by their key, a script by its first key, PING by none."""
    assert command_key(("GET", b"k")) == b"k"
    assert command_key(("SET", "k", b"v", "PX", 5)) == "k"
    assert command_key(("EVALSHA", "sha", 2, "k1", "k2", "arg")) == "k1"
    assert command_key(("EVALSHA", "sha", 0, "arg")) is None
    assert command_key(("PING",)) is None
    assert command_key((b"get", b"k")) == b"k"


def test_redirections_are_read() -> None:
    """MOVED and ASK name slot and node; TRYAGAIN names neither; other errors are none."""
    asked = ("10.0.0.1", 7000)
    assert redirect("MOVED 3999 127.0.0.1:6381", asked) == Redirect(
        "MOVED", 3999, ("127.0.0.1", 6381)
    )
    assert redirect("ASK 12 ::1:7002", asked) == Redirect("ASK", 12, ("::1", 7002))
    assert redirect("MOVED 5 :7003", asked) == Redirect("MOVED", 5, ("10.0.0.1", 7003))
    assert redirect("TRYAGAIN Multiple keys request during rehashing of slot", asked) == Redirect(
        "TRYAGAIN"
    )
    assert redirect("NOSCRIPT No matching script", asked) is None
    assert redirect("CROSSSLOT Keys in request don't hash to the same slot", asked) is None


def test_the_slot_map_is_read_from_cluster_slots() -> None:
    """Each range's primary owns its slots; a gap is None; an unknown endpoint is the host asked."""
    reply = [
        [0, 99, [b"127.0.0.1", 7000, b"id0"], [b"127.0.0.1", 7100, b"r0"]],
        [200, SLOTS - 1, [b"?", 7001, b"id1"]],
    ]
    owners = slot_owners(reply, ("seed", 7000))
    assert owners[0] == owners[99] == ("127.0.0.1", 7000)
    assert owners[100] is None
    assert owners[199] is None
    assert owners[200] == owners[SLOTS - 1] == ("seed", 7001)
    assert len(owners) == SLOTS
