"""The notifier as real processes: a SIGKILL mid-delivery, and two replicas sharing the work."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import redis

from tollgate_common.contracts.events import STREAM_KEY, Event, EventType, Severity
from tollgate_testkit.receivers import SmtpServer, WebhookReceiver, wait_for
from tollgate_testkit.services import start_notifier


def append(redis_url: str, events: list[Event]) -> None:
    client = redis.Redis.from_url(redis_url)
    for e in events:
        client.xadd(STREAM_KEY, e.to_fields())
    client.close()


def pending(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.xpending(STREAM_KEY, "tollgate-notifier")["pending"])
    finally:
        client.close()


def test_sigkill_mid_delivery_then_delivered_once(
    tmp_path: Path, redis_url: str, smtp_server: SmtpServer
) -> None:
    """Kill -9 a notifier while its SMTP delivery hangs; a restarted one delivers it, once."""
    smtp_server.rcpt_delay = 3.0  # the first delivery is stuck mid-conversation
    smtp = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "SMTP_TO": json.dumps(["dev@example.com"]),
        "SEND_TIMEOUT_SECONDS": "10",
    }
    first = start_notifier(tmp_path, redis_url, "n1", **smtp)
    append(
        redis_url,
        [
            Event(
                type=EventType.UPSTREAM_FAILED,
                severity=Severity.CRITICAL,
                route="ns/eod",
                message="down",
            )
        ],
    )
    wait_for(lambda: pending(redis_url) == 1)
    time.sleep(0.5)  # inside the SMTP conversation now
    first.proc.kill(signal.SIGKILL)
    first.stop()  # reaps it and closes its log
    smtp_server.rcpt_delay = 0.0
    second = start_notifier(tmp_path, redis_url, "n2", **smtp)
    try:
        wait_for(lambda: len(smtp_server.messages) >= 1 and pending(redis_url) == 0, timeout=30)
        time.sleep(1.0)  # room for a duplicate to show up, if there were one
        assert smtp_server.subjects() == ["[CRITICAL] upstream.failed on ns/eod"]
    finally:
        second.stop()


def test_two_replicas_deliver_each_notification_once(
    tmp_path: Path, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """Two notifiers on one stream: 40 alert groups, 40 webhook posts, no duplicates."""
    hook = {"WEBHOOK_URL": webhook_receiver.url}
    replicas = [start_notifier(tmp_path, redis_url, f"r{i}", **hook) for i in range(2)]
    try:
        events = [
            Event(
                type=EventType.UPSTREAM_FAILED,
                severity=Severity.CRITICAL,
                route=f"ns/r{i % 40}",
                message="down",
            )
            for i in range(400)
        ]
        append(redis_url, events)
        wait_for(lambda: len(webhook_receiver.posts) >= 40 and pending(redis_url) == 0, timeout=30)
        time.sleep(0.5)
        groups = [p["group"] for p in webhook_receiver.posts]
        assert len(groups) == 40
        assert len(set(groups)) == 40
    finally:
        for r in replicas:
            r.stop()


def test_sigterm_is_graceful(tmp_path: Path, redis_url: str) -> None:
    """SIGTERM: the notifier runs its shutdown (consumer stopped, pools closed) and exits.

    uvicorn re-raises the signal after a graceful shutdown, so the exit status is -SIGTERM.
    """
    n = start_notifier(tmp_path, redis_url, "g1")
    assert n.proc.stop(timeout=20) == -signal.SIGTERM
    assert "Application shutdown complete" in n.proc.output()
