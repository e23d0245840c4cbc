"""The usage outbox of an API key: a copy of each usage event its charges and refunds owe the
usage stream, kept on the key's slot until the exporter has read the event (pure).

The stream (events.USAGE_STREAM_KEY) is one global key, so on a Redis Cluster the scripts, which
run on the key's slot, cannot XADD to it: the ledger adds the event after the answer (ledger.py).
A process killed in between, or an XADD that fails, would lose the event while the credits
moved. So, when the ledger says an exporter exists, authorize.lua and refund.lua also ZADD the
event to ``layout.outbox_key`` in the step that moves the credits (member: ``member``, score:
its ts). The exporter ZREMs it once it has read the event from the stream (from then on its
group's pending list holds it); the notifier's outbox sweeper XADDs what stays longer again and
ZREMs it. The receiver drops a copy that arrived twice by its event id: at least once.

A member is the event's fields joined by ``|`` in ``ORDER``: the route last, because it alone may
hold a ``|`` (charge ids, key ids, plan names, credits and ts never do: apikeys.py, auth's plan
model). The scripts spell the same join (``keep_unexported`` in outbox.lua, which authorize.lua and
refund.lua call); the exporter rebuilds a
member from a stream entry's fields to remove it, so both sides must write each field as the
ledger's XADD does (integers in decimal).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files

from tollgate_common.redis.client import LuaScript

ORDER = ("kind", "charge", "key", "plan", "credits", "ts", "route")
SEP = "|"
MAXLEN = 100_000
"""The most entries one key's outbox keeps: the scripts drop the oldest beyond it. An outbox is
drained within the exporter's grace, so this binds only a stream nobody exports any more (the
stream stays once an exporter made it, and the ledger keeps writing): per key at most about
15 MB, the way events.USAGE_STREAM_MAXLEN binds the stream."""


KEEP_LUA = (files("tollgate_common.ledger") / "outbox.lua").read_text()
"""``keep_unexported``, the one Lua spelling of a member (outbox.lua)."""


def with_outbox(body: str) -> LuaScript:
    """A script whose body may call ``keep_unexported`` (authorize.lua, refund.lua)."""
    return LuaScript(KEEP_LUA + "\n" + body)


def member(fields: Mapping[str, object] | Mapping[bytes, bytes]) -> str:
    """The outbox member of a usage event given by its fields (events.USAGE_FIELDS, as str or as
    the bytes of a stream entry; one missing is empty, as UsageEvent reads it)."""
    plain = {_s(k): _s(v) for k, v in fields.items()}
    return SEP.join(plain.get(f, "") for f in ORDER)


def fields(raw: str | bytes) -> dict[str, str]:
    """The usage event's fields of an outbox member; ``ValueError`` for one that is not."""
    parts = _s(raw).split(SEP, len(ORDER) - 1)
    if len(parts) != len(ORDER):
        raise ValueError(f"not an outbox member: {_s(raw)[:80]!r}")
    return dict(zip(ORDER, parts, strict=True))


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
