"""The usage export as real processes (issue 13): charges and refunds made by the real gateway
and auth (or the real ledger script) reach a real billing endpoint; the endpoint down then up;
the exporter SIGKILLed mid-stream; dead letters once the attempts are spent."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from pathlib import Path

import httpx
import redis
from redis.exceptions import ResponseError

from tollgate_common.contracts.events import USAGE_STREAM_KEY
from tollgate_common.ledger import Ledger, LedgerSettings
from tollgate_common.ledger.apikeys import key_hash, new_charge_id
from tollgate_common.ledger.layout import record_key
from tollgate_common.redis.client import create_redis
from tollgate_testkit.ports import free_port
from tollgate_testkit.receivers import UsageReceiver, wait_for
from tollgate_testkit.services import ADMIN_TOKEN, start_auth, start_gateway, start_notifier
from tollgate_testkit.upstreams import Upstream

from .conftest import PEPPER, metric, routes_yaml

KEY = "tg_abcdefgh_" + "s" * 43
GROUP = "tollgate-usage-export"

# no low-credit events in these tests; charges refundable for a minute
QUIET = LedgerSettings(credits_low_threshold=0, charge_ttl_seconds=60)


def charge_many(redis_url: str, n: int) -> list[str]:
    """``n`` charges of 1 credit by the real ledger script; their charge ids. The exporter's
    group is made first, as a notifier that ran before would have (else nothing is recorded)."""

    async def run() -> list[str]:
        client = create_redis(redis_url)
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await client.xgroup_create(USAGE_STREAM_KEY, GROUP, id="0", mkstream=True)
        await client.hset(
            record_key("abcdefgh", key_hash(KEY)), mapping={"id": "abcdefgh", "credits": n}
        )
        ledger = Ledger(client, QUIET)
        ids = [new_charge_id("abcdefgh") for _ in range(n)]
        for start in range(0, n, 100):
            outcomes = await asyncio.gather(
                *(
                    ledger.authorize(
                        KEY,
                        "/x",
                        1,
                        "",
                        charge_id=cid,
                        route="default/live",
                    )
                    for cid in ids[start : start + 100]
                )
            )
            assert {o.reason for o in outcomes} == {"ok"}
        await ledger.drain()  # the usage events are added after the answers
        await client.aclose()
        return ids

    return asyncio.run(run())


def pending(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.xpending(USAGE_STREAM_KEY, GROUP)["pending"])
    finally:
        client.close()


def test_charges_and_refunds_of_the_real_stack_arrive(
    tmp_path: Path, redis_url: str, usage_receiver: UsageReceiver
) -> None:
    """Requests through a gateway in each auth mode: every charge and every refund (a route
    whose upstream is down) arrives as a valid CloudEvent, and their credits net to what the
    key was charged."""
    up = Upstream("up", tmp_path)
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(up.url))
    auth = start_auth(tmp_path, redis_url, KEY_PEPPER=PEPPER)
    env = {"ROUTES_FILE": str(routes), "AUTH_URL": auth.url, "KEY_PEPPER": PEPPER}
    gateways = [start_gateway(tmp_path, redis_url, AUTH_MODE=m, **env) for m in ("http", "redis")]
    notifier = start_notifier(tmp_path, redis_url, "u1", USAGE_EXPORT_URL=usage_receiver.url)
    try:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        r = httpx.post(f"{auth.url}/v1/admin/keys", json={"credits": 100}, headers=admin)
        key_id, key = r.json()["id"], r.json()["key"]
        for gw in gateways:
            for path in ["live/a", "live/b", "live/c", "broken/x"]:
                httpx.get(f"{gw.url}/api/v1/{path}", params={"api_key": key}, timeout=10)
        # 2 x (3 served at 1 credit + 1 failed at 3 credits, refunded) = 8 charges, 2 refunds
        wait_for(lambda: len(usage_receiver.events) >= 10, timeout=30)
        wait_for(lambda: pending(redis_url) == 0)
        assert usage_receiver.problems == []
        events = usage_receiver.events
        assert len(events) == 10
        assert {e["subject"] for e in events} == {key_id}
        routes_charged = Counter(
            (e["data"]["route"], e["data"]["kind"], e["data"]["credits"]) for e in events
        )
        assert routes_charged == {
            ("default/live", "charge", 1): 6,
            ("default/broken", "charge", 3): 2,
            ("default/broken", "refund", -3): 2,
        }
        refunded = {e["data"]["charge_id"] for e in events if e["data"]["kind"] == "refund"}
        charged = {e["id"] for e in events if e["data"]["kind"] == "charge"}
        assert refunded <= charged
        left = int(httpx.get(f"{auth.url}/v1/admin/keys/{key_id}", headers=admin).json()["credits"])
        assert sum(e["data"]["credits"] for e in events) == 100 - left
    finally:
        notifier.stop()
        for gw in gateways:
            gw.stop()
        auth.stop()
        up.stop()


def test_endpoint_down_then_up(tmp_path: Path, redis_url: str) -> None:
    """Nothing listens on the endpoint's port: attempts fail; once it is up, all arrive."""
    port = free_port()
    notifier = start_notifier(
        tmp_path, redis_url, "u1", USAGE_EXPORT_URL=f"http://127.0.0.1:{port}"
    )
    receiver: UsageReceiver | None = None
    try:
        ids = charge_many(redis_url, 30)
        wait_for(
            lambda: metric(notifier.url, "tollgate_notifier_usage_export_failures_total") >= 2,
            timeout=30,
        )
        receiver = UsageReceiver(port=port)
        wait_for(lambda: set(receiver.ids()) == set(ids), timeout=30)
        assert receiver.problems == []
    finally:
        notifier.stop()
        if receiver is not None:
            receiver.stop()


def test_sigkill_mid_stream_every_charge_arrives(
    tmp_path: Path, redis_url: str, usage_receiver: UsageReceiver
) -> None:
    """2,000 charges; the exporter is SIGKILLed while it sends them (a batch in flight); a
    fresh one takes over its pending entries: every charge arrives, and after dedup by id,
    exactly once."""
    ids = charge_many(redis_url, 2000)
    usage_receiver.delay = 0.05  # every batch is in flight a while: the kill lands in one
    env = {"USAGE_EXPORT_URL": usage_receiver.url, "USAGE_BATCH": "50"}
    first = start_notifier(tmp_path, redis_url, "u1", **env)
    wait_for(lambda: len(usage_receiver.events) >= 300, timeout=60)
    first.proc.kill(signal.SIGKILL)
    first.stop()  # reaps it and closes its log
    before = len(usage_receiver.events)
    assert before < len(ids), "the exporter finished before the kill: nothing was tested"
    second = start_notifier(tmp_path, redis_url, "u2", **env)
    try:
        wait_for(lambda: set(usage_receiver.ids()) >= set(ids), timeout=120)
        wait_for(lambda: pending(redis_url) == 0, timeout=30)
        got = usage_receiver.ids()
        assert set(got) == set(ids)  # nothing lost, nothing made up
        assert usage_receiver.problems == []
        # at least once: what was in flight at the kill may come twice, nothing else
        assert len(got) - len(ids) <= 50
    finally:
        second.stop()


def test_dead_letters_once_the_attempts_are_spent(
    tmp_path: Path, redis_url: str, usage_receiver: UsageReceiver
) -> None:
    """An endpoint refusing every batch: after the attempts each event is in the dead-letter
    stream, nothing stays pending, and the metric counts them."""
    usage_receiver.status = 422
    ids = charge_many(redis_url, 5)  # before the exporter starts: one batch
    notifier = start_notifier(
        tmp_path,
        redis_url,
        "u1",
        USAGE_EXPORT_URL=usage_receiver.url,
        USAGE_MAX_ATTEMPTS="3",
    )
    try:
        name = "tollgate_notifier_usage_dead_letters_total"
        wait_for(lambda: metric(notifier.url, name) == 5, timeout=30)
        client = redis.Redis.from_url(redis_url)
        dead = client.xrange("tollgate:usage:dead")
        client.close()
        assert {f[b"charge"].decode() for _, f in dead} == set(ids)
        assert pending(redis_url) == 0
        assert usage_receiver.requests == 3  # one batch, three attempts
    finally:
        notifier.stop()
