"""Every Redis key of the credit ledger, spelled in one place (pure).

Redis Cluster (issue 13): everything the hot path touches for one API key carries the key's id
as its hash tag (``{id}``), so it lives on one slot and authorize.lua / refund.lua run there
without CROSSSLOT: the key record (``record_key``, still found by the key's hash, so a wrong
secret finds nothing), its GCRA state (``rate_key``), its copy of its plan (``plan_copy_key``),
its charges and their refund tombstones (``charge_key`` / ``tombstone_key``: a charge id carries
its key's id, apikeys.new_charge_id), its hourly usage buckets (``usage_key``) and its usage
outbox (``outbox_key``: the usage events charged or refunded and not yet seen by the exporter,
ledger/outbox.py). The scripts
take every name as KEYS except the record and bucket a refund reads from its charge record,
which carry the same tag. tests/test_layout.py checks that the scripts write exactly these
names and that they hash to one slot.

Global, on other slots, read and written only by the admin path (auth's store, the notifier):
the sets of keys and plans, the plans themselves and their member sets (``plan_keys_key``: a plan
update fans out to its keys' copies), id -> hash, the expiry index. The invalid-key counter is
per client address: the caller counts it in its own step (ledger.py), never inside the script.
The usage stream (events.USAGE_STREAM_KEY) is one global key: the caller adds the events the
scripts return (ledger.py says when); the scripts keep a copy in the key's outbox until the
exporter has read it.

``legacy_*``: the names before the move (no tag), read only by the migration (migration.py) and
by the refund of a charge made before it.
"""

from __future__ import annotations

P = "tollgate:auth:"
KEYS_SET = P + "keys"
PLANS_SET = P + "plans"
# Sorted set: key id -> its expires_at (Unix ms), for the keys that expire and are not revoked;
# auth keeps it, the notifier's expiry sweeper reads the due range (key.expiring, issue 13).
EXPIRIES = P + "expiries"
PLAN = P + "plan:"
PLAN_KEYS = P + "plan-keys:"
USAGE = "tollgate:usage:"
# The layout version the data is in (migration.py sets it once every key has moved) and the lock
# that keeps two auth replicas from migrating at once.
LAYOUT_VERSION = P + "layout"
MIGRATION_LOCK = P + "layout-migration"
LAYOUT = 2
HOUR_MS = 3_600_000
# A usage bucket's field: "<counter>:<route>" (a counter never holds a colon; a route name may).
# "refilled": credits a plan's refill added (issue 13), under the route of the request that applied
# it (ledger.ME_ROUTE for GET /_tollgate/v1/me).
COUNTERS = ("requests", "charged", "refunded", "hits", "4xx", "5xx", "refilled")


def status_class(status: int) -> str:
    """The usage counter of an answer's status: "4xx", "5xx" or "" (pure)."""
    return "4xx" if 400 <= status < 500 else "5xx" if 500 <= status < 600 else ""


def _tagged(key_id: str) -> str:
    return f"{P}{{{key_id}}}:"


def record_key(key_id: str, hashed: str) -> str:
    """The key record (a hash): found by the key's id and its hash together."""
    return f"{_tagged(key_id)}key:{hashed}"


def rate_key(key_id: str) -> str:
    """The key's GCRA state: its theoretical arrival time, in ms."""
    return f"{_tagged(key_id)}rl"


def plan_copy_key(key_id: str) -> str:
    """The key's copy of its plan's fields (plan_key's, plus ``name``), the one the script
    reads; auth's store writes it with the key and fans a plan's change out to it."""
    return f"{_tagged(key_id)}plan"


def charge_key(key_id: str, charge_id: str) -> str:
    return f"{_tagged(key_id)}charge:{charge_id}"


def tombstone_key(key_id: str, charge_id: str) -> str:
    return f"{_tagged(key_id)}refunded:{charge_id}"


def outbox_key(key_id: str) -> str:
    """The key's usage outbox (a sorted set: ledger/outbox.py's member -> the event's ts in ms):
    the events its charges and refunds owe the usage stream, until the exporter has read them."""
    return f"{_tagged(key_id)}unexported"


def id_key(key_id: str) -> str:
    return f"{P}id:{key_id}"


def plan_key(name: str) -> str:
    return PLAN + name


def plan_keys_key(name: str) -> str:
    """The ids of the keys on plan ``name``: whose copies a change of the plan rewrites."""
    return PLAN_KEYS + name


def invalid_key(client: str) -> str:
    return f"{P}invalid:{client or '-'}"


def hour_of(at_ms: int) -> int:
    """The Unix second an hour bucket starts at."""
    return (at_ms - at_ms % HOUR_MS) // 1000


def usage_key(key_id: str, hour: int) -> str:
    """One API key's usage in the hour starting at ``hour`` (Unix seconds), by route."""
    return f"{USAGE}{{{key_id}}}:{hour}"


def authorize_keys(key_id: str, hashed: str, charge_id: str, hour: int) -> list[str]:
    """authorize.lua's KEYS, in its order: all of the key's slot."""
    return [
        record_key(key_id, hashed),
        plan_copy_key(key_id),
        charge_key(key_id, charge_id),
        tombstone_key(key_id, charge_id),
        usage_key(key_id, hour),
        rate_key(key_id),
        outbox_key(key_id),
    ]


def refund_keys(key_id: str | None, charge_id: str) -> list[str]:
    """refund.lua's KEYS: on the slot of the key the charge id carries, its outbox last; the
    untagged names for a charge id of before the tags (``key_id`` None), with no outbox (the
    refund's event then has none: ledger.py)."""
    if key_id is None:
        return [legacy_charge_key(charge_id), legacy_tombstone_key(charge_id)]
    return [charge_key(key_id, charge_id), tombstone_key(key_id, charge_id), outbox_key(key_id)]


def legacy_record_key(hashed: str) -> str:
    return f"{P}key:{hashed}"


def legacy_rate_key(key_id: str) -> str:
    return f"{P}rl:{key_id}"


def legacy_charge_key(charge_id: str) -> str:
    return f"{P}charge:{charge_id}"


def legacy_tombstone_key(charge_id: str) -> str:
    return f"{P}refunded:{charge_id}"


def moved_key(hashed: str) -> str:
    """Where a migrated record's new name is left for a while: a charge made before the move
    names the old record, and its refund follows this pointer (refund_legacy.lua)."""
    return f"{P}moved:{hashed}"
