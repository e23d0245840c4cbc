"""No usage event lost between a charge and its XADD, as real processes: a gateway whose every
XADD Redis refuses, and a gateway SIGKILLed mid-load. The charges the key's credits and usage
buckets show all reach a real billing endpoint, through the keys' outboxes and the notifier's
outbox sweeper, exactly once after dedup by event id."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis

from tollgate_common.contracts.events import USAGE_STREAM_KEY
from tollgate_common.ledger.layout import outbox_key
from tollgate_testkit.receivers import UsageReceiver, wait_for
from tollgate_testkit.services import (
    ADMIN_TOKEN,
    Service,
    start_auth,
    start_gateway,
    start_notifier,
)
from tollgate_testkit.upstreams import Upstream

from .conftest import PEPPER, metric, routes_yaml

GROUP = "tollgate-usage-export"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# a sweep every half second, of what is a second older than what the exporter read
SWEEP = {"USAGE_OUTBOX_INTERVAL_SECONDS": "0.5", "USAGE_OUTBOX_GRACE_SECONDS": "1"}


def node(redis_url: str) -> redis.Redis:
    """A plain client of the server (or the one cluster node) behind ``redis_url``."""
    u = urlsplit(redis_url)
    return redis.Redis(host=u.hostname or "127.0.0.1", port=u.port or 6379)


def as_user(redis_url: str, user: str, password: str) -> str:
    scheme, rest = redis_url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


def charged(redis_url: str, key_id: str) -> int:
    """The credits the key's usage buckets say were charged, net of refunds."""
    c = node(redis_url)
    try:
        total = 0
        for name in c.scan_iter(match=f"tollgate:usage:{{{key_id}}}:*"):
            for field, value in c.hgetall(name).items():
                counter = field.decode().split(":", 1)[0]
                total += {"charged": 1, "refunded": -1}.get(counter, 0) * int(value)
        return total
    finally:
        c.close()


def settled(redis_url: str, key_id: str) -> bool:
    """Nothing left in the key's outbox nor pending in the exporter's group."""
    c = node(redis_url)
    try:
        if c.zcard(outbox_key(key_id)):
            return False
        return int(c.xpending(USAGE_STREAM_KEY, GROUP)["pending"]) == 0
    finally:
        c.close()


def net_credits(receiver: UsageReceiver) -> tuple[int, Counter[str]]:
    """The credits the endpoint got (after dedup by event id) and how often each id came."""
    seen: dict[str, int] = {}
    for e in list(receiver.events):
        seen[e["id"]] = e["data"]["credits"]
    return sum(seen.values()), Counter(e["id"] for e in list(receiver.events))


def new_key(auth: Service, credits: int) -> tuple[str, str]:
    r = httpx.post(f"{auth.url}/v1/admin/keys", json={"credits": credits}, headers=ADMIN)
    r.raise_for_status()
    return r.json()["id"], r.json()["key"]


def left(auth: Service, key_id: str) -> int:
    r = httpx.get(f"{auth.url}/v1/admin/keys/{key_id}", headers=ADMIN)
    return int(r.json()["credits"])


@dataclass
class Exporting:
    """The upstream and its routes file, an exporting notifier (a short sweep) and auth: what
    both tests run their gateway against."""

    routes: Path
    notifier: Service
    auth: Service


@contextmanager
def exporting(tmp_path: Path, redis_url: str, receiver: UsageReceiver) -> Iterator[Exporting]:
    with ExitStack() as stack:
        up = Upstream("up", tmp_path)
        stack.callback(up.stop)
        routes = tmp_path / "routes.yaml"
        routes.write_text(routes_yaml(up.url))
        notifier = start_notifier(tmp_path, redis_url, "u1", USAGE_EXPORT_URL=receiver.url, **SWEEP)
        stack.callback(notifier.stop)
        auth = start_auth(tmp_path, redis_url, KEY_PEPPER=PEPPER)
        stack.callback(auth.stop)
        yield Exporting(routes, notifier, auth)


def test_charges_whose_xadd_redis_refuses_arrive_after_the_sweep(
    tmp_path: Path, redis_url: str, usage_receiver: UsageReceiver
) -> None:
    """A gateway (ledger in it) on a Redis user that may not XADD: every charge's and every
    refund's event is refused, yet each reaches the endpoint once, and the credits it carries
    are the ones the key was charged."""
    admin = node(redis_url)
    admin.acl_setuser(
        "noxadd",
        enabled=True,
        passwords=["+noxadd-pw"],
        keys=["*"],
        channels=["*"],
        categories=["+@all"],
        commands=["-xadd"],
    )
    try:
        with exporting(tmp_path, redis_url, usage_receiver) as ex:
            gateway = start_gateway(
                tmp_path,
                as_user(redis_url, "noxadd", "noxadd-pw"),
                ROUTES_FILE=str(ex.routes),
                AUTH_MODE="redis",
                KEY_PEPPER=PEPPER,
            )
            try:
                key_id, key = new_key(ex.auth, 100)
                for path in ["live/a"] * 20 + ["broken/x"] * 2:
                    httpx.get(f"{gateway.url}/api/v1/{path}", params={"api_key": key}, timeout=10)
                spent = 100 - left(ex.auth, key_id)
                assert spent == 20  # 20 served at 1, 2 failed at 3 and refunded
                wait_for(lambda: len(set(usage_receiver.ids())) >= 24, timeout=30)
                wait_for(lambda: settled(redis_url, key_id), timeout=30)
                net, times = net_credits(usage_receiver)
                assert len(times) == 24  # 22 charges, 2 refunds
                assert net == spent == charged(redis_url, key_id)
                # none was in the stream twice: the refused were not
                assert max(times.values()) == 1
                assert usage_receiver.problems == []
                assert metric(ex.notifier.url, "tollgate_notifier_usage_resent_total") == 24
            finally:
                gateway.stop()
    finally:
        admin.acl_deluser("noxadd")
        admin.close()


def test_a_gateway_sigkilled_mid_load_loses_no_usage_event(
    tmp_path: Path, redis_url: str, usage_receiver: UsageReceiver
) -> None:
    """A gateway (ledger in it) SIGKILLed under 32 concurrent requests: the charge events the
    endpoint gets, after dedup, are exactly the charges the credits and usage buckets show
    (the ones whose XADD the kill cut off come through the outbox)."""
    done = threading.Event()
    answered = [0]

    async def load(url: str, key: str) -> None:
        async with httpx.AsyncClient(timeout=5) as client:

            async def one() -> None:
                while not done.is_set():
                    try:
                        await client.get(f"{url}/api/v1/live/a", params={"api_key": key})
                        answered[0] += 1
                    except httpx.HTTPError:
                        return  # the gateway is gone

            await asyncio.gather(*(one() for _ in range(32)))

    with exporting(tmp_path, redis_url, usage_receiver) as ex:
        env = {"ROUTES_FILE": str(ex.routes), "AUTH_MODE": "redis", "KEY_PEPPER": PEPPER}
        gateway = start_gateway(tmp_path, redis_url, **env)
        try:
            key_id, key = new_key(ex.auth, 1_000_000)
            worker = threading.Thread(target=asyncio.run, args=(load(gateway.url, key),))
            worker.start()
            wait_for(lambda: answered[0] >= 500, timeout=60)
            gateway.proc.kill(signal.SIGKILL)
            gateway.stop()  # reaps it and closes its log
            done.set()
            worker.join(timeout=30)
            spent = 1_000_000 - left(ex.auth, key_id)
            assert spent >= 500
            assert charged(redis_url, key_id) == spent
            wait_for(lambda: net_credits(usage_receiver)[0] >= spent, timeout=60)
            wait_for(lambda: settled(redis_url, key_id), timeout=30)
            net, times = net_credits(usage_receiver)
            assert net == spent  # every charge, each counted once
            assert len(times) == spent
            assert usage_receiver.problems == []
        finally:
            done.set()
            gateway.stop()
