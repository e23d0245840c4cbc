"""Every Redis key of the credit ledger, spelled in one place (pure).

authorize.lua derives three names itself, from the same prefixes: ``PLAN`` + plan name,
``RATE`` + key id and ``usage_key`` (tests/test_layout.py checks that the script writes exactly
the names these functions give).

Redis Cluster: the usage of a key carries the key id as its hash tag (``{id}``), so every usage
bucket of one API key lives on one slot. The older records (key record, plan, charge, tombstone)
are not tagged yet: moving them is a data migration, so the ledger still wants one Redis or a
primary with replicas, as it always did.
"""

from __future__ import annotations

P = "tollgate:auth:"
KEYS_SET = P + "keys"
PLANS_SET = P + "plans"
# Sorted set: key id -> its expires_at (Unix ms), for the keys that expire and are not revoked;
# auth keeps it, the notifier's expiry sweeper reads the due range (key.expiring, issue 13).
EXPIRIES = P + "expiries"
PLAN = P + "plan:"
RATE = P + "rl:"
USAGE = "tollgate:usage:"
HOUR_MS = 3_600_000
# A usage bucket's field: "<counter>:<route>" (a counter never holds a colon; a route name may).
# "refilled": credits a plan's refill added (issue 13), under the route of the request that applied
# it (ledger.ME_ROUTE for GET /_tollgate/v1/me).
COUNTERS = ("requests", "charged", "refunded", "hits", "4xx", "5xx", "refilled")


def status_class(status: int) -> str:
    """The usage counter of an answer's status: "4xx", "5xx" or "" (pure)."""
    return "4xx" if 400 <= status < 500 else "5xx" if 500 <= status < 600 else ""


def record_key(hashed: str) -> str:
    return f"{P}key:{hashed}"


def id_key(key_id: str) -> str:
    return f"{P}id:{key_id}"


def plan_key(name: str) -> str:
    return PLAN + name


def rate_key(key_id: str) -> str:
    return RATE + key_id


def invalid_key(client: str) -> str:
    return f"{P}invalid:{client or '-'}"


def charge_key(charge_id: str) -> str:
    return f"{P}charge:{charge_id}"


def tombstone_key(charge_id: str) -> str:
    return f"{P}refunded:{charge_id}"


def hour_of(at_ms: int) -> int:
    """The Unix second an hour bucket starts at."""
    return (at_ms - at_ms % HOUR_MS) // 1000


def usage_key(key_id: str, hour: int) -> str:
    """One API key's usage in the hour starting at ``hour`` (Unix seconds), by route."""
    return f"{USAGE}{{{key_id}}}:{hour}"
