"""Alert groups and notification text."""

from __future__ import annotations

from tollgate_common.contracts.events import Event, EventType
from tollgate_notifier.notification import Notification, group_of


def test_failures_group_by_type_and_route() -> None:
    """Two failures of one route share a group; another route has its own."""
    a = Event(type=EventType.UPSTREAM_FAILED, route="ns/a")
    b = Event(type=EventType.UPSTREAM_FAILED, route="ns/b")
    assert group_of(a) == group_of(Event(type=EventType.UPSTREAM_FAILED, route="ns/a"))
    assert group_of(a) != group_of(b)


def test_recovery_resolves_the_failure_group() -> None:
    """route.recovered names the upstream.failed group of the same route."""
    failed = group_of(Event(type=EventType.UPSTREAM_FAILED, route="ns/a"))
    recovered = group_of(Event(type=EventType.ROUTE_RECOVERED, route="ns/a"))
    assert recovered == (failed[0], True)


def test_keys_group_by_subject() -> None:
    """Credit events group by key (subject) when they have no route."""
    e = Event(type=EventType.CREDITS_LOW, subject="tg_abc_…")
    assert group_of(e) == ("credits.low|tg_abc_…", False)


def test_credit_events_of_two_keys_on_one_route_are_two_groups() -> None:
    """credits.low of two keys on one route: two groups (each key, and its owner, hears)."""
    a = Event(type=EventType.CREDITS_LOW, route="ns/eod", subject="tg_a_…")
    b = Event(type=EventType.CREDITS_LOW, route="ns/eod", subject="tg_b_…")
    assert group_of(a)[0] == "credits.low|tg_a_…"
    assert group_of(a) != group_of(b)


def test_text_mentions_folded_events() -> None:
    """A firing notification says how many events it stands for."""
    n = Notification(
        id="g#1",
        group="g",
        type="upstream.failed",
        status="firing",
        severity="critical",
        route="ns/a",
        subject="",
        count=42,
        message="down",
    )
    assert n.title == "[CRITICAL] upstream.failed on ns/a"
    assert "42 events" in n.text()


def test_key_expiring_groups_by_key_and_expiry() -> None:
    """key.expiring: one group per key and expiry, so a moved expiry is a new notification."""
    first = Event(
        type=EventType.KEY_EXPIRING,
        subject="tg_a_…",
        attributes={"key_id": "a1", "expires_at": "100"},
    )
    moved = first.model_copy(update={"attributes": {"key_id": "a1", "expires_at": "200"}})
    assert group_of(first) == ("key.expiring|a1@100", False)
    assert group_of(moved)[0] != group_of(first)[0]


def test_refilled_groups_by_key() -> None:
    """credits.refilled of two keys on one route: two groups, like credits.low."""
    a = Event(type=EventType.CREDITS_REFILLED, route="ns/eod", subject="tg_a_…")
    b = Event(type=EventType.CREDITS_REFILLED, route="ns/eod", subject="tg_b_…")
    assert group_of(a)[0] != group_of(b)[0]
