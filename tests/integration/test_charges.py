"""An authorize whose answer never reached the gateway is refunded, and a refund the gateway
could not land yet survives the gateway's crash (issue 11)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from tollgate_common.ledger.apikeys import key_hash, key_id_of
from tollgate_common.ledger.layout import record_key
from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.relay import Relay
from tollgate_testkit.services import ADMIN_TOKEN, Service, start_auth, start_gateway

from .conftest import PEPPER, metric, routes_yaml

PENDING = "tollgate:gateway:refunds:pending"


def new_key(auth: Service, credits: int) -> str:
    with httpx.Client(base_url=auth.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        r = c.post("/v1/admin/keys", json={"credits": credits})
        r.raise_for_status()
        return str(r.json()["key"])


def credits_of(r: redis.Redis, key: str) -> int:
    return int(r.hget(record_key(key_id_of(key) or "", key_hash(key, PEPPER)), "credits") or -1)


def until(predicate: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["http", "redis"])
def test_lost_authorize_answer_is_refunded(tmp_path: Path, mode: str) -> None:
    """Redis runs the debit but its answer never comes back: 503, and the charge comes back
    (the refund by the gateway's charge id lands once the silent connection is given up)."""
    store = RedisServer(tmp_path / "redis")
    relay = Relay(store.port)
    up = Upstream("up", tmp_path)
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(up.url))
    # the ledger's caller talks to Redis through the relay: auth in http mode, the gateway in
    # redis mode
    auth = start_auth(tmp_path, relay.url if mode == "http" else store.url, KEY_PEPPER=PEPPER)
    gw = start_gateway(
        tmp_path,
        relay.url if mode == "redis" else store.url,
        ROUTES_FILE=str(routes),
        AUTH_URL=auth.url,
        AUTH_MODE=mode,
        KEY_PEPPER=PEPPER,
        AUTH_TIMEOUT_SECONDS="1",
        EVENTS_ENABLED="false",
    )
    client = redis.Redis.from_url(store.url)
    try:
        key = new_key(auth, 5)
        url = f"{gw.url}/api/v1/live/X"
        assert httpx.get(url, params={"api_key": key}, timeout=10).status_code == 200
        assert credits_of(client, key) == 4  # served and charged; the script is loaded now
        relay.cut()  # the ledger's connection goes silent: commands run, replies are lost
        r = httpx.get(url, params={"api_key": key}, timeout=10)
        assert r.status_code == 503
        until(lambda: credits_of(client, key) == 4, "the lost charge was not refunded")
        assert httpx.get(url, params={"api_key": key}, timeout=10).status_code == 200
        assert credits_of(client, key) == 3  # served again, charged once
    finally:
        client.close()
        gw.stop()
        auth.stop()
        relay.stop()
        up.stop()
        store.stop()


def test_parked_refund_survives_a_gateway_crash(tmp_path: Path) -> None:
    """A refund that cannot land (auth down) is parked in Redis; the gateway is SIGKILLed; a
    fresh gateway lands it once auth is back."""
    store = RedisServer(tmp_path / "redis")
    up = Upstream("up", tmp_path, mode="hang")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        routes_yaml(up.url).replace(
            "creditCost: 1\n---", "creditCost: 1\n  timeoutSeconds: 2\n---", 2
        )
    )
    auth = start_auth(tmp_path, store.url, KEY_PEPPER=PEPPER)
    env = {"ROUTES_FILE": str(routes), "AUTH_URL": auth.url, "KEY_PEPPER": PEPPER}
    gw = start_gateway(tmp_path, store.url, **env)
    client = redis.Redis.from_url(store.url)
    fresh: Service | None = None
    try:
        key = new_key(auth, 5)
        answer: list[int] = []
        t = threading.Thread(
            target=lambda: answer.append(
                httpx.get(
                    f"{gw.url}/api/v1/live/X", params={"api_key": key}, timeout=10
                ).status_code
            )
        )
        t.start()
        until(lambda: credits_of(client, key) == 4, "not charged")
        # The upstream has the request only once auth's answer reached the gateway: killing auth
        # before that (the debit is in Redis first) makes the outcome unknown, a 503.
        until(lambda: up.requests == 1, "the request never reached the upstream")
        auth.proc.kill(signal.SIGKILL)  # the refund after the 504 cannot reach auth
        t.join(10)
        assert answer == [504]
        until(lambda: client.zcard(PENDING) == 1, "the refund was not parked")
        gw.proc.kill(signal.SIGKILL)
        gw.stop()
        auth.restart(signal.SIGKILL)
        assert credits_of(client, key) == 4
        fresh = start_gateway(tmp_path, store.url, **env)
        until(lambda: credits_of(client, key) == 5, "the parked refund was lost")
        until(lambda: client.zcard(PENDING) == 0, "the landed refund is still parked")
    finally:
        client.close()
        if fresh is not None:
            fresh.stop()
        gw.stop()
        auth.stop()
        up.stop()
        store.stop()


def test_refund_owed_while_redis_is_down_survives_a_gateway_crash(tmp_path: Path) -> None:
    """Redis dies after the debit (AOF on, as the chart runs it): the refund can be neither landed
    nor parked, so it is spooled to the local file; the gateway is SIGKILLed; Redis comes back;
    the restarted gateway lands it from its spool."""
    store = RedisServer(tmp_path / "redis", appendonly=True)
    up = Upstream("up", tmp_path, mode="hang")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        routes_yaml(up.url).replace(
            "creditCost: 1\n---", "creditCost: 1\n  timeoutSeconds: 2\n---", 2
        )
    )
    spool = tmp_path / "refunds.spool"
    auth = start_auth(tmp_path, store.url, KEY_PEPPER=PEPPER)
    env = {
        "ROUTES_FILE": str(routes),
        "AUTH_URL": auth.url,
        "AUTH_MODE": "redis",
        "KEY_PEPPER": PEPPER,
        "EVENTS_ENABLED": "false",
        "REFUND_SPOOL_FILE": str(spool),
    }
    gw = start_gateway(tmp_path, store.url, **env)
    fresh: Service | None = None
    try:
        key = new_key(auth, 5)
        answer: list[int] = []
        t = threading.Thread(
            target=lambda: answer.append(
                httpx.get(
                    f"{gw.url}/api/v1/live/X", params={"api_key": key}, timeout=10
                ).status_code
            )
        )
        t.start()
        with redis.Redis.from_url(store.url) as client:
            until(lambda: credits_of(client, key) == 4, "not charged")
        store.proc.kill(signal.SIGKILL)  # the refund after the 504 finds no Redis
        t.join(10)
        assert answer == [504]
        retried = ("tollgate_gateway_refunds_total", "retry")
        until(lambda: metric(gw.url, retried[0], result=retried[1]) >= 1, "no refund tried")
        gw.proc.kill(signal.SIGKILL)
        gw.stop()
        store.restart()
        with redis.Redis.from_url(store.url) as client:
            assert credits_of(client, key) == 4  # the debit survived the crash (AOF)
            fresh = start_gateway(tmp_path, store.url, **env)
            until(lambda: credits_of(client, key) == 5, "the spooled refund was lost")
        until(lambda: spool.read_text().strip() == "", "the landed refund is still spooled")
    finally:
        if fresh is not None:
            fresh.stop()
        gw.stop()
        auth.stop()
        up.stop()
        store.stop()
