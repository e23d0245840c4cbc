"""Plan refills through the whole stack (both auth modes: the auth service's ledger, and the
gateways' own in AUTH_MODE=redis): a due refill is applied once however many requests on both
gateways cross it, counted in usage and announced as credits.refilled."""

from __future__ import annotations

import asyncio
import time

import httpx
import redis

from tollgate_common.contracts.events import STREAM_KEY, Event, EventType
from tollgate_common.ledger.apikeys import key_hash, key_id_of
from tollgate_common.ledger.layout import record_key
from tollgate_common.ledger.refill import REFILLED_AT
from tollgate_testkit.receivers import wait_for

from .conftest import PEPPER, Stack


def due(stack: Stack, raw: str) -> None:
    """Make the key's refill due: as if it had last been refilled long ago."""
    client = redis.Redis.from_url(stack.redis.url)
    client.hset(record_key(key_id_of(raw) or "", key_hash(raw, PEPPER)), REFILLED_AT, 0)
    client.close()


async def spend(stack: Stack, raw: str, n: int) -> list[int]:
    """``n`` concurrent requests of cost 1, spread over both gateways."""
    async with httpx.AsyncClient(timeout=30) as c:
        answers = await asyncio.gather(
            *(
                c.get(f"{stack.gateways[i % 2].url}/api/v1/live/RF{i}", params={"api_key": raw})
                for i in range(n)
            )
        )
    return [a.status_code for a in answers]


def refill_events(stack: Stack, key_id: str) -> list[Event]:
    client = redis.Redis.from_url(stack.redis.url)
    try:
        events = [Event.from_fields(f) for _, f in client.xrange(STREAM_KEY)]
    finally:
        client.close()
    return [
        e
        for e in events
        if e.type == EventType.CREDITS_REFILLED and e.attributes.get("key_id") == key_id
    ]


def test_a_due_refill_is_applied_once_across_gateways(stack: Stack) -> None:
    """A key at 1 credit with a refill of 10 due, 30 concurrent requests over both gateways: 11
    served, 19 refused with 402, one refill in usage and one credits.refilled event."""
    with stack.admin() as c:
        r = c.put(
            "/v1/admin/plans/refill10",
            json={"name": "refill10", "refill": {"amount": 10, "interval": "hourly"}},
        )
        r.raise_for_status()
    key_id, raw = stack.new_key(1, plan="refill10")
    due(stack, raw)
    codes = asyncio.run(spend(stack, raw, 30))
    assert sorted(codes) == [200] * 11 + [402] * 19
    assert stack.credits(key_id) == 0
    with stack.admin() as c:
        r = c.get(f"/v1/admin/keys/{key_id}/usage", params={"from": int(time.time()) - 7200})
        route = r.json()["routes"]["default/live"]
    assert (route["refilled"], route["requests"], route["4xx"]) == (10, 11, 19)
    wait_for(lambda: len(refill_events(stack, key_id)) >= 1, timeout=15)
    [event] = refill_events(stack, key_id)
    assert event.attributes["refilled"] == "10"
    with stack.admin() as c:
        shown = c.get(f"/v1/admin/keys/{key_id}").json()
    assert shown["next_refill"] > time.time()  # refilled this hour: the next one is to come
