"""Fields of an API key's record, read by its key id wherever the record is: at its tagged name,
or at its untagged one until the layout migration moves it (tollgate_common/ledger/migration.py).
The owner webhooks (sinks.py) and the usage export's customer (export.py) read it so."""

from __future__ import annotations

from tollgate_common.ledger.layout import id_key, legacy_record_key, record_key
from tollgate_common.redis.commands import Client


async def key_fields(redis: Client, key_id: str, *fields: str) -> list[bytes | None]:
    """The values of ``fields`` (None each for a key or field that is not there)."""
    hashed = await redis.get(id_key(key_id))
    if hashed is None:
        return [None] * len(fields)
    h = hashed.decode() if isinstance(hashed, bytes) else str(hashed)
    values: list[bytes | None] = await redis.hmget(record_key(key_id, h), *fields)
    if all(v is None for v in values):  # not moved to the tagged layout yet
        values = await redis.hmget(legacy_record_key(h), *fields)
    return values
