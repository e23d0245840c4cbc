"""The usage stream against a real redis-server: one event per charge and per refund, written in
the ledger's own step, and a stream that cannot take one never fails the request (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tollgate_common.contracts.events import USAGE_STREAM_KEY, UsageEvent, UsageKind
from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger import ledger as ledger_module
from tollgate_common.ledger.apikeys import key_hash, new_charge_id
from tollgate_common.ledger.layout import charge_key, record_key
from tollgate_common.redis.client import create_redis

KEY = "tg_abcdefgh_" + "s" * 43

# no low-credit events in these tests; charges refundable for a minute
QUIET = LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60)


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Ledger]:
    client = create_redis(redis_url)
    await client.hset(
        record_key("abcdefgh", key_hash(KEY)),
        mapping={"id": "abcdefgh", "credits": 10, "plan": "pro"},
    )
    # an exporter has started: its consumer group made the stream
    await client.xgroup_create(USAGE_STREAM_KEY, "export", id="0", mkstream=True)
    ledger = Ledger(client, QUIET)
    yield ledger
    await ledger.drain()
    await client.aclose()


async def charge(ledger: Ledger, charge_id: str, cost: int = 3) -> str:
    o = await ledger.authorize(
        KEY,
        "/x",
        cost,
        "10.0.0.1",
        charge_id=charge_id,
        route="default/eod",
    )
    return o.reason


async def usage(ledger: Ledger) -> list[UsageEvent]:
    await ledger.drain()  # a charge's event is added after its answer
    entries = await ledger.redis.xrange(USAGE_STREAM_KEY)
    return [UsageEvent.from_fields(fields) for _, fields in entries]


async def credits(ledger: Ledger) -> int:
    return int(await ledger.redis.hget(record_key("abcdefgh", key_hash(KEY)), "credits"))


async def test_a_charge_writes_one_usage_event(ledger: Ledger) -> None:
    """A charge appends one event: its charge id, key id, route, plan and the credits debited."""
    cid = new_charge_id("abcdefgh")
    assert await charge(ledger, cid) == "ok"
    (e,) = await usage(ledger)
    assert (e.kind, e.id, e.key, e.route, e.plan, e.credits) == (
        UsageKind.CHARGE,
        cid,
        "abcdefgh",
        "default/eod",
        "pro",
        3,
    )
    assert e.ts > 0


async def test_no_exporter_no_stream(ledger: Ledger) -> None:
    """Until an exporter made the stream, a charge writes no usage (and still charges)."""
    await ledger.redis.delete(USAGE_STREAM_KEY)
    assert await charge(ledger, new_charge_id("abcdefgh")) == "ok"
    assert await ledger.redis.exists(USAGE_STREAM_KEY) == 0


async def test_a_ledger_that_found_no_stream_looks_again_later(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No stream: the next charges skip the XADD (no second command per charge without an
    exporter) until NO_STREAM_SECONDS have passed; then a stream made meanwhile is written."""
    await ledger.redis.delete(USAGE_STREAM_KEY)
    monkeypatch.setattr(ledger_module, "NO_STREAM_SECONDS", 3600.0)
    assert await charge(ledger, new_charge_id("abcdefgh")) == "ok"
    await ledger.drain()
    await ledger.redis.xgroup_create(USAGE_STREAM_KEY, "export", id="0", mkstream=True)
    assert await charge(ledger, new_charge_id("abcdefgh")) == "ok"
    assert await usage(ledger) == []  # within the window: not looked for
    monkeypatch.setattr(ledger, "_no_stream_until", 0.0)  # the window has passed
    cid = new_charge_id("abcdefgh")
    assert await charge(ledger, cid) == "ok"
    assert [e.id for e in await usage(ledger)] == [cid]


async def test_a_replayed_charge_writes_nothing_more(ledger: Ledger) -> None:
    """An authorize applied twice with one charge id: one debit, one event."""
    cid = new_charge_id("abcdefgh")
    await charge(ledger, cid)
    await charge(ledger, cid)
    assert [e.id for e in await usage(ledger)] == [cid]


async def test_a_free_or_refused_request_writes_nothing(ledger: Ledger) -> None:
    """Cost 0 and no credits left charge nothing, so they export nothing."""
    await charge(ledger, new_charge_id("abcdefgh"), cost=0)
    await charge(ledger, new_charge_id("abcdefgh"), cost=11)
    assert await usage(ledger) == []


async def test_a_refund_writes_its_own_event_once(ledger: Ledger) -> None:
    """A refund appends one event with an id derived from the charge's; a second refund none."""
    cid = new_charge_id("abcdefgh")
    await charge(ledger, cid)
    await ledger.refund(cid)
    await ledger.refund(cid)
    events = await usage(ledger)
    assert [(e.kind, e.id, e.credits, e.route) for e in events] == [
        (UsageKind.CHARGE, cid, 3, "default/eod"),
        (UsageKind.REFUND, f"{cid}:refund", 3, "default/eod"),
    ]


async def test_a_refund_of_a_charge_recorded_before_the_stream(ledger: Ledger) -> None:
    """A charge record in the older ``record|cost`` form is still refunded (no route known)."""
    cid = new_charge_id("abcdefgh")
    await ledger.redis.set(
        charge_key("abcdefgh", cid), record_key("abcdefgh", key_hash(KEY)) + "|4"
    )
    assert await ledger.refund(cid) == 14
    (e,) = await usage(ledger)
    assert (e.kind, e.credits, e.route) == (UsageKind.REFUND, 4, "")


async def test_a_stream_that_refuses_the_entry_never_fails_the_charge(ledger: Ledger) -> None:
    """The usage key holding something else (WRONGTYPE): the charge and refund still work."""
    await ledger.redis.set(USAGE_STREAM_KEY, "not a stream")
    cid = new_charge_id("abcdefgh")
    assert await charge(ledger, cid) == "ok"
    assert await credits(ledger) == 7
    assert await ledger.refund(cid) == 10


async def test_the_stream_stays_near_its_bound(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At its bound the stream drops its oldest entries and the charges go on."""
    monkeypatch.setattr("tollgate_common.ledger.ledger.USAGE_STREAM_MAXLEN", 100)
    await ledger.redis.hset(record_key("abcdefgh", key_hash(KEY)), "credits", 1000)
    for _ in range(500):
        assert await charge(ledger, new_charge_id("abcdefgh"), cost=1) == "ok"
    assert await credits(ledger) == 500
    # MAXLEN ~ trims whole listpack nodes (100 entries by default), so "about" the bound
    await ledger.drain()
    assert await ledger.redis.xlen(USAGE_STREAM_KEY) <= 200
