"""The usage outbox against a real redis-server: the scripts keep each usage event the ledger
sends in the key's outbox, once per charge and per refund, spelled so that it decodes to the
event the stream got; nothing is kept while no exporter's stream is there."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tollgate_common.contracts.events import USAGE_STREAM_KEY, UsageEvent
from tollgate_common.ledger import Ledger, LedgerSettings, layout, outbox
from tollgate_common.ledger.apikeys import MAX_CREDITS, key_hash, new_charge_id
from tollgate_common.ledger.layout import outbox_key, record_key
from tollgate_common.redis.client import create_redis

KEY_ID = "abcdefgh"
KEY = f"tg_{KEY_ID}_" + "s" * 43
OUTBOX = outbox_key(KEY_ID)
NOW = 1_800_000_000_000
QUIET = LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60, usage_retention_days=2)


async def make_ledger(redis_url: str, *, stream: bool) -> Ledger:
    client = create_redis(redis_url)
    await client.hset(
        record_key(KEY_ID, key_hash(KEY)), mapping={"id": KEY_ID, "credits": 100, "plan": "pro"}
    )
    if stream:  # an exporter has started: its consumer group made the stream
        await client.xgroup_create(USAGE_STREAM_KEY, "export", id="0", mkstream=True)
    return Ledger(client, QUIET)


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Ledger]:
    """A ledger that has seen the stream (one charge of another key's id taught it)."""
    ledger = await make_ledger(redis_url, stream=True)
    await charge(ledger, new_charge_id(KEY_ID))
    await ledger.drain()
    await ledger.redis.delete(OUTBOX)
    await ledger.redis.delete(USAGE_STREAM_KEY)
    await ledger.redis.xgroup_create(USAGE_STREAM_KEY, "export", id="0", mkstream=True)
    yield ledger
    await ledger.drain()
    await ledger.redis.aclose()


async def charge(ledger: Ledger, charge_id: str, cost: int = 3) -> str:
    d = await ledger.authorize(KEY, "/x", cost, "c", charge_id=charge_id, route="default/a|b")
    return d.reason


async def kept(ledger: Ledger) -> list[UsageEvent]:
    await ledger.drain()
    members = await ledger.redis.zrange(OUTBOX, 0, -1)
    return [UsageEvent.from_fields(outbox.fields(m)) for m in members]


async def streamed(ledger: Ledger) -> list[UsageEvent]:
    await ledger.drain()
    return [UsageEvent.from_fields(f) for _, f in await ledger.redis.xrange(USAGE_STREAM_KEY)]


def test_a_member_decodes_to_its_fields() -> None:
    """The route goes last and may hold the separator; every field comes back as written."""
    f = {"kind": "charge", "charge": "abcdefgh-x1", "key": KEY_ID, "route": "ns/a|b", "plan": ""}
    f |= {"credits": "7", "ts": "1800000000000"}
    assert outbox.fields(outbox.member(f)) == f
    raw = {k.encode(): v.encode() for k, v in f.items()}
    assert outbox.member(raw) == outbox.member(f)
    with pytest.raises(ValueError, match="not an outbox member"):
        outbox.fields("charge|x")


async def test_a_charge_is_kept_as_the_event_the_stream_got(ledger: Ledger) -> None:
    """One member per charge, its score the event's ts, decoding to the stream's event."""
    cid = new_charge_id(KEY_ID)
    assert await charge(ledger, cid) == "ok"
    (e,) = await streamed(ledger)
    assert e.id == cid
    assert await kept(ledger) == [e]
    assert await ledger.redis.zscore(OUTBOX, outbox.member(e.model_dump(mode="json"))) == e.ts


async def test_a_repeated_charge_id_is_kept_once(ledger: Ledger) -> None:
    """An authorize applied twice with one charge id: one debit, one member."""
    cid = new_charge_id(KEY_ID)
    await charge(ledger, cid)
    await charge(ledger, cid)
    assert [e.id for e in await kept(ledger)] == [cid]


async def test_free_and_refused_requests_keep_nothing(ledger: Ledger) -> None:
    """Cost 0, no credits: nothing charged, nothing kept."""
    await charge(ledger, new_charge_id(KEY_ID), cost=0)
    await charge(ledger, new_charge_id(KEY_ID), cost=1000)
    assert await kept(ledger) == []


async def test_a_refund_is_kept_once_as_its_event(ledger: Ledger) -> None:
    """A refund adds its own member (the refund event's fields); a second refund none."""
    cid = new_charge_id(KEY_ID)
    await charge(ledger, cid)
    await ledger.refund(cid, "5xx")
    await ledger.refund(cid, "5xx")
    events = await streamed(ledger)
    assert [e.id for e in events] == [cid, f"{cid}:refund"]
    assert sorted(await kept(ledger), key=lambda e: e.id) == events


async def test_the_outbox_expires_with_the_usage_retention(ledger: Ledger) -> None:
    """The outbox's first entry gives it the usage retention as its TTL."""
    await charge(ledger, new_charge_id(KEY_ID))
    ttl = await ledger.redis.ttl(OUTBOX)
    assert 2 * 86400 - 5 < ttl <= 2 * 86400


async def test_the_outbox_keeps_at_most_its_bound(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond outbox.MAXLEN entries the oldest go (an outbox nobody drains stays bounded)."""
    monkeypatch.setattr(outbox, "MAXLEN", 3)
    ids = [new_charge_id(KEY_ID) for _ in range(5)]
    now = int(time.time() * 1000)
    for i, cid in enumerate(ids):  # a millisecond apart: entries of one ms go in member order
        await ledger.authorize(KEY, "/x", 1, "c", charge_id=cid, now_ms=now + i)
    assert [e.id for e in await kept(ledger)] == ids[2:]


async def test_no_stream_nothing_kept(redis_url: str) -> None:
    """No exporter (no stream): once the ledger has seen that (its first charge, which it sends
    and keeps, as it knows no better), charges and refunds keep nothing, also when it looks
    again after NO_STREAM_SECONDS."""
    ledger = await make_ledger(redis_url, stream=False)
    try:
        await charge(ledger, new_charge_id(KEY_ID))
        await ledger.drain()
        await ledger.redis.delete(OUTBOX)
        for _ in range(3):
            cid = new_charge_id(KEY_ID)
            assert await charge(ledger, cid) == "ok"
            await ledger.refund(cid)
            await ledger.drain()
            ledger._no_stream_until = 0.0  # the window has passed: looked for again
        assert await ledger.redis.exists(OUTBOX) == 0
    finally:
        await ledger.redis.aclose()


async def test_a_stream_that_refuses_every_xadd_still_gets_the_events_kept(
    redis_url: str,
) -> None:
    """Every XADD fails (the stream's key holds a string: WRONGTYPE), so no XADD ever answers:
    every charge is kept, from the first one on, also after the ledger had seen no stream (its
    own EXISTS learns that the key is there again)."""
    ledger = await make_ledger(redis_url, stream=False)
    try:
        first = new_charge_id(KEY_ID)
        assert await charge(ledger, first) == "ok"
        await ledger.drain()  # no stream: seen
        await ledger.redis.set(USAGE_STREAM_KEY, "not a stream")
        ledger._no_stream_until = 0.0  # the window has passed
        probe = new_charge_id(KEY_ID)  # sent, not kept: the stream was missing when last seen
        assert await charge(ledger, probe) == "ok"
        await ledger.drain()
        later = new_charge_id(KEY_ID)
        assert await charge(ledger, later) == "ok"
        assert [e.id for e in await kept(ledger)] == [first, later]
    finally:
        await ledger.redis.aclose()


async def test_the_script_keeps_the_event_only_with_its_flag(ledger: Ledger) -> None:
    """authorize.lua itself: ARGV[11] '0' writes no outbox entry, '1' writes one."""
    for flag, want in (("0", 0), ("1", 1)):
        cid = new_charge_id(KEY_ID)
        keys = layout.authorize_keys(KEY_ID, key_hash(KEY), cid, layout.hour_of(NOW))
        args = [NOW, 1, 60, "/x", 0, "r", 0, 86400, 0, MAX_CREDITS, flag, cid, outbox.MAXLEN]
        r = await ledger._authorize(ledger.redis, keys, args)
        assert r[0] == b"ok"
        assert await ledger.redis.zcard(OUTBOX) == want
