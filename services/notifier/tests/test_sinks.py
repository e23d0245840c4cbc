"""The log sink logs each notification at the level its severity says."""

from __future__ import annotations

import logging

import pytest

from tollgate_notifier.notification import Notification
from tollgate_notifier.sinks import LogSink, log_level


def notification(severity: str, status: str = "firing") -> Notification:
    return Notification(
        id="g#1",
        group="g",
        type="upstream.failed",
        status=status,
        severity=severity,
        route="ns/a",
        subject="",
        count=1,
        message="down",
    )


@pytest.mark.parametrize(
    ("severity", "status", "level"),
    [
        ("critical", "firing", logging.CRITICAL),
        ("warning", "firing", logging.WARNING),
        ("info", "firing", logging.INFO),
        ("critical", "resolved", logging.INFO),
        ("unheard-of", "firing", logging.WARNING),
    ],
)
def test_level_follows_severity(severity: str, status: str, level: int) -> None:
    """critical -> CRITICAL, warning -> WARNING, info and resolved -> INFO, unknown -> WARNING."""
    assert log_level(notification(severity, status)) == level


async def test_critical_notification_is_logged_critical(caplog: pytest.LogCaptureFixture) -> None:
    """A [CRITICAL] notification reaches the log as a CRITICAL record, not a WARNING one."""
    with caplog.at_level(logging.DEBUG, logger="tollgate.notifications"):
        await LogSink().send(notification("critical"))
    [record] = caplog.records
    assert record.getMessage().startswith("[CRITICAL] upstream.failed on ns/a")
    assert record.levelno == logging.CRITICAL
