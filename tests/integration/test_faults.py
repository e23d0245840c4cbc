"""Fault suite (``-m faults``): real processes killed under bounded concurrent load, and the
ledger still balances: credits debited == answers served with a charge (drift 0), in both auth
modes; and a SIGKILLed notifier loses no notification.

Each run prints its figures (requests, answers by status, debits, refunds, drift) and records them
as test properties (``--junitxml`` keeps them).
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tollgate_common.contracts.events import Event, EventType, Severity
from tollgate_testkit.receivers import WebhookReceiver, wait_for

from .conftest import Stack, open_stack
from .test_notifier import append, pending, start_notifier

pytestmark = pytest.mark.faults

REQUESTS = 2000  # bounded in count ...
SECONDS = 20.0  # ... and in time
CLIENTS = 4
CREDITS = 1_000_000


@pytest.fixture(scope="module", params=["http", "redis"])
def faulty(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """The two-gateway stack on a Redis that persists as the chart's does (AOF, everysec)."""
    work = tmp_path_factory.mktemp("faults")
    with open_stack(work, request.param, appendonly=True, AUTH_TIMEOUT_SECONDS="1") as s:
        yield s


async def load(stack: Stack, key: str, fault: Callable[[], None]) -> Counter[int]:
    """CLIENTS clients send REQUESTS requests in all over both gateways; ``fault`` runs in a
    thread once a fifth of them are answered."""
    statuses: Counter[int] = Counter()
    sent = 0
    deadline = time.monotonic() + SECONDS
    started = threading.Event()

    async def client(i: int) -> None:
        nonlocal sent
        async with httpx.AsyncClient(timeout=10) as c:
            while sent < REQUESTS and time.monotonic() < deadline:
                sent += 1
                gw = stack.gateways[(sent + i) % 2].url
                try:
                    r = await c.get(f"{gw}/api/v1/live/F{sent % 50}", params={"api_key": key})
                    statuses[r.status_code] += 1
                except httpx.TransportError:
                    statuses[0] += 1  # no answer: nothing served
                if sum(statuses.values()) == REQUESTS // 5:
                    started.set()

    async def injector() -> None:
        await asyncio.to_thread(started.wait, SECONDS)
        await asyncio.to_thread(fault)

    await asyncio.gather(injector(), *(client(i) for i in range(CLIENTS)))
    return statuses


def settled(stack: Stack, key_id: str) -> int:
    """The key's credits once no gateway holds a refund to land and the balance holds still."""
    deadline = time.monotonic() + 60
    while True:
        while stack.gateway_metric("tollgate_gateway_refunds_pending") > 0:
            assert time.monotonic() < deadline, "refunds did not land"
            time.sleep(0.1)
        before = stack.credits(key_id)
        time.sleep(1.0)  # a late authorize still queued in Redis would show now
        if stack.credits(key_id) == before and not stack.gateway_metric(
            "tollgate_gateway_refunds_pending"
        ):
            return before
        assert time.monotonic() < deadline, "the balance did not settle"


COUNTERS = {
    "refunded": ("tollgate_gateway_refunds_total", {"result": "refunded"}),
    "voided": ("tollgate_gateway_refunds_total", {"result": "absent"}),
    "retries": ("tollgate_gateway_refunds_total", {"result": "retry"}),
    "unavailable": ("tollgate_gateway_auth_decisions_total", {"reason": "unavailable"}),
    "auth_error": ("tollgate_gateway_auth_decisions_total", {"reason": "auth_error"}),
}


def counters(stack: Stack) -> dict[str, float]:
    return {k: stack.gateway_metric(name, **labels) for k, (name, labels) in COUNTERS.items()}


def run(
    stack: Stack, name: str, fault: Callable[[], None], record: Callable[[str, object], None]
) -> None:
    """One bounded load with ``fault`` in the middle; then the ledger must balance: credits kept
    (debited and not refunded) == answers served with a charge (200s on a paid route)."""
    key_id, key = stack.new_key(CREDITS)
    before = counters(stack)
    statuses = asyncio.run(load(stack, key, fault))
    left = settled(stack, key_id)
    delta = {k: int(v - before[k]) for k, v in counters(stack).items()}
    served = statuses[200]
    kept = CREDITS - left
    figures = {
        "run": f"{name}[{stack.mode}]",
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "debits": kept + delta["refunded"],
        "refunds": delta["refunded"],
        "served": served,
        "drift": kept - served,
        "unknown_outcomes": delta["unavailable"] + delta["auth_error"],
        "refunds_voided": delta["voided"],
        "refund_retries": delta["retries"],
    }
    print("FAULT-RUN", json.dumps(figures))
    record("figures", figures)
    assert statuses[200] > 0
    assert kept == served, figures


def test_auth_sigkill_and_restart(
    faulty: Stack, record_property: Callable[[str, object], None]
) -> None:
    """Both auth services SIGKILLed in turn mid-load and restarted on their ports: drift 0."""

    def fault() -> None:
        for auth in faulty.auths:
            auth.restart(signal.SIGKILL)

    run(faulty, "auth-sigkill", fault, record_property)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_redis_restart(
    faulty: Stack, sig: signal.Signals, record_property: Callable[[str, object], None]
) -> None:
    """Redis stopped mid-load (gracefully, or SIGKILL) and started again on its AOF: drift 0."""
    run(faulty, f"redis-{sig.name.lower()}", lambda: faulty.redis.restart(sig), record_property)


def test_redis_hangs_past_the_auth_deadline(
    faulty: Stack, record_property: Callable[[str, object], None]
) -> None:
    """Redis stopped (SIGSTOP) longer than the authorize deadline, then resumed: the gateways gave
    up on authorizes Redis runs later, and refunded them by charge id first: drift 0."""

    def fault() -> None:
        faulty.redis.proc.kill(signal.SIGSTOP)
        time.sleep(3.0)  # past AUTH_TIMEOUT_SECONDS (1) and the lean client's timeout (2)
        faulty.redis.proc.kill(signal.SIGCONT)

    run(faulty, "redis-sigstop", fault, record_property)


def test_notifier_sigkill_loses_nothing(
    tmp_path: Path, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """A notifier SIGKILLed mid-stream: a fresh one delivers every notification it had not."""
    webhook_receiver.delay = 0.05
    hook = {"WEBHOOK_URL": webhook_receiver.url}
    first = start_notifier(tmp_path, redis_url, "k1", **hook)
    routes = [f"ns/k{i}" for i in range(60)]
    append(
        redis_url,
        [
            Event(
                type=EventType.UPSTREAM_FAILED, severity=Severity.CRITICAL, route=r, message="down"
            )
            for r in routes
        ],
    )
    wait_for(lambda: len(webhook_receiver.posts) >= 10, timeout=30)
    first.proc.kill(signal.SIGKILL)
    first.stop()
    delivered_before = len(webhook_receiver.posts)
    second = start_notifier(tmp_path, redis_url, "k2", **hook)
    try:
        wait_for(
            lambda: (
                pending(redis_url) == 0 and len({p["group"] for p in webhook_receiver.posts}) >= 60
            ),
            timeout=60,
        )
        groups = [p["group"] for p in webhook_receiver.posts]
        print(
            "FAULT-RUN",
            json.dumps(
                {
                    "run": "notifier-sigkill",
                    "events": 60,
                    "before_kill": delivered_before,
                    "posts": len(groups),
                    "distinct": len(set(groups)),
                }
            ),
        )
        assert len(set(groups)) == 60
        assert delivered_before < 60  # the kill did land mid-stream
    finally:
        second.stop()
