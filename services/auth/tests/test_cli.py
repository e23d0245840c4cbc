"""The operators' command line: its parsing (pure) and its commands against a real auth process."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tollgate_auth.cli import parser, run
from tollgate_testkit.services import ADMIN_TOKEN, Service, start_auth


def subcommands(p: argparse.ArgumentParser, path: str = "tollgate") -> Iterator[tuple[str, str]]:
    """Every (command path, help line) below ``p``, nouns and verbs alike."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                yield f"{path} {name}", helps.get(name, "")
                yield from subcommands(child, f"{path} {name}")


def test_every_subcommand_has_a_help_text() -> None:
    """Each noun and verb is listed with a one-line help, and its own --help starts with it."""
    found = dict(subcommands(parser()))
    assert len(found) == 19
    assert all(found.values()), [name for name, text in found.items() if not text]


@pytest.mark.parametrize("amount", ["-5", "0", "ten"])
def test_topup_refuses_a_non_positive_amount(
    amount: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys topup with 0, a negative number or no number: usage error, nothing sent."""
    with pytest.raises(SystemExit) as info:
        run(["--url", "http://127.0.0.1:1", "--token", "t", "keys", "topup", "kid", amount])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "tollgate keys topup: error: argument amount:" in err
    if amount == "-5":
        assert "must be at least 1, not -5 (to take credits away, use set-credits)" in err


@pytest.fixture
def auth(tmp_path: Path, redis_url: str) -> Iterator[Service]:
    service = start_auth(tmp_path, redis_url)
    yield service
    service.stop()


def test_topup_against_a_real_auth_service(
    auth: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    """create, topup 5, a refused topup -5: the balance is 15, not 10."""
    base = ["--url", auth.url, "--token", ADMIN_TOKEN, "--json"]
    assert run([*base, "keys", "create", "--credits", "10"]) == 0
    key_id = json.loads(capsys.readouterr().out)["id"]
    assert run([*base, "keys", "topup", key_id, "5"]) == 0
    assert json.loads(capsys.readouterr().out)["credits"] == 15
    with pytest.raises(SystemExit):
        run([*base, "keys", "topup", key_id, "-5"])
    assert run([*base, "keys", "show", key_id]) == 0
    assert json.loads(capsys.readouterr().out)["credits"] == 15


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["usage", "k1"], "/v1/admin/keys/k1/usage?granularity=hour"),
        (
            ["usage", "k1", "--from", "2026-01-01", "--to", "1767312000", "--by", "day"],
            "/v1/admin/keys/k1/usage?from=2026-01-01&to=1767312000&granularity=day",
        ),
        (["usage", "k1", "--by", "route"], "/v1/admin/keys/k1/usage?granularity=day"),
        (["usage", "--from", "2026-01-01"], "/v1/admin/usage?from=2026-01-01"),
    ],
)
def test_usage_asks_the_usage_api(argv: list[str], path: str) -> None:
    """`tollgate usage`: one key by hour, day or route (read by day), or every key's totals."""
    from tollgate_auth.cli import request

    method, got, body, _ = request(parser().parse_args(argv))
    assert (method, got, body) == ("GET", path, None)


def test_usage_rejects_an_unknown_grouping(capsys: pytest.CaptureFixture[str]) -> None:
    """--by takes hour, day or route only: a usage error, nothing sent."""
    with pytest.raises(SystemExit) as info:
        run(["--token", "t", "usage", "k1", "--by", "week"])
    assert info.value.code == 2
    assert "invalid choice: 'week'" in capsys.readouterr().err


def test_webhook_and_customer_against_a_real_auth_service(
    auth: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys webhook sets the URL (the secret is never printed back), --clear removes it; keys
    customer sets the billing customer; every list answer leaves the secret out."""
    base = ["--url", auth.url, "--token", ADMIN_TOKEN, "--json"]
    assert run([*base, "keys", "create"]) == 0
    key_id = json.loads(capsys.readouterr().out)["id"]
    secret = "whsec-0123456789abcdef"
    hook = ["keys", "webhook", key_id, "--url", "https://owner.example/hook", "--secret", secret]
    assert run([*base, *hook]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["webhook_url"] == "https://owner.example/hook"
    assert run([*base, "keys", "customer", key_id, "cus_42"]) == 0
    assert json.loads(capsys.readouterr().out)["customer"] == "cus_42"
    assert run([*base, "keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert secret not in out + listed
    assert run([*base, "keys", "webhook", key_id, "--clear"]) == 0
    assert json.loads(capsys.readouterr().out)["webhook_url"] == ""


def test_webhook_without_a_secret_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """keys webhook --url without --secret (or TOLLGATE_WEBHOOK_SECRET): usage error, not sent."""
    monkeypatch.delenv("TOLLGATE_WEBHOOK_SECRET", raising=False)
    argv = ["--url", "http://127.0.0.1:1", "--token", "t", "keys", "webhook", "kid"]
    assert run([*argv, "--url", "https://owner.example/hook"]) == 2
    assert "signing secret" in capsys.readouterr().err


def test_plans_set_refill_and_keys_show_the_next_refill(
    auth: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    """plans set --refill 5 --every daily; a key on it: keys show prints the next refill, the
    coming UTC midnight."""
    base = ["--url", auth.url, "--token", ADMIN_TOKEN]
    assert run([*base, "plans", "set", "daily", "--refill", "5", "--every", "daily"]) == 0
    assert "amount=5,interval=daily,mode=add" in capsys.readouterr().out
    assert run([*base, "--json", "keys", "create", "--plan", "daily"]) == 0
    key_id = json.loads(capsys.readouterr().out)["id"]
    assert run([*base, "keys", "show", key_id]) == 0
    header, row = capsys.readouterr().out.splitlines()
    midnight = time.strftime("%Y-%m-%d 00:00", time.gmtime(time.time() + 86400))
    assert "NEXT_REFILL" in header
    assert row.endswith(midnight)


def test_plans_set_refill_needs_its_interval(capsys: pytest.CaptureFixture[str]) -> None:
    """--refill without --every (or --every alone): usage error, nothing sent."""
    argv = ["--url", "http://127.0.0.1:1", "--token", "t", "plans", "set", "p"]
    assert run([*argv, "--refill", "5"]) == 2
    assert run([*argv, "--every", "daily"]) == 2
    assert "--refill" in capsys.readouterr().err
