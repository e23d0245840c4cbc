"""The ledger's charge ids against a real redis-server: a charge is idempotent, and a refund of a
charge whose outcome was never learnt stays a no-op even if that authorize lands later."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger.apikeys import key_hash, new_charge_id
from tollgate_common.ledger.layout import record_key
from tollgate_common.redis.client import create_redis

KEY = "tg_abcdefgh_" + "s" * 43


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Ledger]:
    client = create_redis(redis_url)
    await client.hset(
        record_key("abcdefgh", key_hash(KEY)), mapping={"id": "abcdefgh", "credits": 10}
    )
    ledger = Ledger(client, LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60))
    yield ledger
    await ledger.drain()
    await client.aclose()


async def charge(ledger: Ledger, charge_id: str, cost: int = 3) -> str:
    o = await ledger.authorize(KEY, "/x", cost, "10.0.0.1", charge_id=charge_id)
    return o.reason


async def credits(ledger: Ledger) -> int:
    return int(await ledger.redis.hget(record_key("abcdefgh", key_hash(KEY)), "credits"))


async def test_one_charge_id_debits_once(ledger: Ledger) -> None:
    """An authorize applied twice with one charge id debits once."""
    cid = new_charge_id("abcdefgh")
    assert await charge(ledger, cid) == "ok"
    assert await charge(ledger, cid) == "ok"
    assert await credits(ledger) == 7


async def test_refund_gives_back_once(ledger: Ledger) -> None:
    """Two refunds of one charge: the credits come back once."""
    cid = new_charge_id("abcdefgh")
    await charge(ledger, cid)
    assert await ledger.refund(cid) == 10
    assert await ledger.refund(cid) == -1
    assert await credits(ledger) == 10


async def test_refund_before_the_authorize_lands(ledger: Ledger) -> None:
    """A refund of a charge that never happened is a no-op, and stays one: the authorize,
    applied later, debits nothing."""
    cid = new_charge_id("abcdefgh")
    assert await ledger.refund(cid) == -1
    assert await charge(ledger, cid) != "ok"
    assert await credits(ledger) == 10


async def test_refund_then_replayed_authorize(ledger: Ledger) -> None:
    """Charged, refunded, then the same authorize applied again: still nothing owed."""
    cid = new_charge_id("abcdefgh")
    await charge(ledger, cid)
    await ledger.refund(cid)
    assert await charge(ledger, cid) != "ok"
    assert await credits(ledger) == 10


async def test_an_untagged_charge_id_is_answered_tagged_and_refunds_by_it(ledger: Ledger) -> None:
    """A caller's own id without the key's tag: recorded (and answered) with it in front, on the
    key's slot; a refund by the answer's id gives the credits back."""
    o = await ledger.authorize(KEY, "/x", 4, "10.0.0.1", charge_id="0123456789abcdef")
    assert o.charge_id == "abcdefgh-0123456789abcdef"
    assert await ledger.refund(o.charge_id) == 10
