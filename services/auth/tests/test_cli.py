"""The operators' command line: its parsing (pure), and its commands (keys, usage, cache purge,
webhooks, errors) against a real auth process, in-process and as a process of its own."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import redis

from tollgate_auth.cli import parser, run
from tollgate_common.contracts.cachekeys import entry_key
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


# --- the usage, cache purge and webhook paths against a real auth service (issue 15)


def charge(auth: Service, raw: str, route: str, path: str, cost: int) -> None:
    """One authorize through auth's RPC, as a gateway sends it."""
    body = {"key": raw, "route": route, "path": path, "cost": cost}
    r = httpx.post(f"{auth.url}/v1/authorize", json=body, timeout=10)
    assert r.status_code == 200
    assert r.json()["reason"] == "ok", r.text


@pytest.fixture
def admin_argv(auth: Service) -> list[str]:
    return ["--url", auth.url, "--token", ADMIN_TOKEN]


def used_key(auth: Service, admin_argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """A key with usage on two routes: ns/eod 3 x 2 credits, ns/live 1 x 1."""
    assert run([*admin_argv, "--json", "keys", "create", "--credits", "10"]) == 0
    created = json.loads(capsys.readouterr().out)
    for _ in range(3):
        charge(auth, created["key"], "ns/eod", "/eod/AAPL", 2)
    charge(auth, created["key"], "ns/live", "/live/X", 1)
    return str(created["id"])


def test_usage_in_every_format_against_a_real_auth_service(
    auth: Service, admin_argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """tollgate usage: a table by hour, CSV by hour and by route, the API's JSON, and every
    key's totals, all with the counts the ledger wrote."""
    key_id = used_key(auth, admin_argv, capsys)

    assert run([*admin_argv, "usage", key_id]) == 0
    head, *rows = capsys.readouterr().out.splitlines()
    assert head.split() == [
        "START",
        "REQUESTS",
        "CHARGED",
        "REFUNDED",
        "HITS",
        "4XX",
        "5XX",
        "REFILLED",
    ]
    assert [r.split()[2:] for r in rows] == [["4", "7", "0", "0", "0", "0", "0"]]

    assert run([*admin_argv, "usage", key_id, "--csv"]) == 0
    (hour,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z", hour["start"])
    assert (hour["requests"], hour["charged"]) == ("4", "7")

    assert run([*admin_argv, "usage", key_id, "--by", "route", "--csv"]) == 0
    by_route = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["route"], r["requests"], r["charged"]) for r in by_route] == [
        ("ns/eod", "3", "6"),
        ("ns/live", "1", "1"),
    ]

    assert run([*admin_argv, "--json", "usage", key_id, "--by", "day"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["key_id"], doc["granularity"], doc["total"]["charged"]) == (key_id, "day", 7)

    assert run([*admin_argv, "usage", "--csv"]) == 0
    (total,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (total["key_id"], total["requests"], total["charged"]) == (key_id, "4", "7")


def test_cache_purge_against_a_real_auth_service(
    auth: Service, admin_argv: list[str], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """tollgate cache purge ROUTE PREFIX deletes only the route's entries under the prefix and
    prints how many; without a prefix, the route's rest; --json prints the API's answer."""
    r = redis.Redis.from_url(redis_url)
    try:
        gone = [entry_key("GET", "ns/eod", p, []) for p in ("/eod/AAPL", "/eod/AB")]
        kept = [entry_key("GET", "ns/eod", "/eod/MSFT", []), entry_key("GET", "ns/x", "/eod/A", [])]
        for k in [*gone, *kept]:  # one key per command: the entries hash to many slots
            r.set(k, b"v")
        assert run([*admin_argv, "cache", "purge", "ns/eod", "/eod/A"]) == 0
        head, row = capsys.readouterr().out.splitlines()
        assert head.split() == ["ROUTE", "PREFIX", "DELETED"]
        assert row.split() == ["ns/eod", "/eod/A", "2"]
        assert sum([r.exists(k) for k in gone]) == 0
        assert run([*admin_argv, "--json", "cache", "purge", "ns/eod"]) == 0
        assert json.loads(capsys.readouterr().out)["deleted"] == 1
        assert sum([r.exists(k) for k in kept]) == 1  # the other route's entry
    finally:
        r.close()


def test_webhook_table_shows_the_url_never_the_secret(
    auth: Service, admin_argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """keys webhook with the secret from TOLLGATE_WEBHOOK_SECRET prints a table with the URL;
    show and list (table and JSON) never print the secret; --clear empties the URL."""
    assert run([*admin_argv, "--json", "keys", "create"]) == 0
    key_id = json.loads(capsys.readouterr().out)["id"]
    secret = "whsec-from-the-environment-42"
    env = {"TOLLGATE_WEBHOOK_SECRET": secret}
    out = cli([*admin_argv, "keys", "webhook", key_id, "--url", "https://owner.example/hook"], env)
    assert out.returncode == 0, out.stderr
    head, row = out.stdout.splitlines()
    assert head.split()[-1] == "WEBHOOK_URL"
    assert row.split()[-1] == "https://owner.example/hook"
    shown = ""
    for argv in (["keys", "show", key_id], ["keys", "list"], ["--json", "keys", "list"]):
        assert run([*admin_argv, *argv]) == 0
        shown += capsys.readouterr().out
    assert "https://owner.example/hook" in shown
    assert secret not in shown + out.stdout + out.stderr
    assert run([*admin_argv, "--json", "keys", "webhook", key_id, "--clear"]) == 0
    assert json.loads(capsys.readouterr().out)["webhook_url"] == ""


def cli(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``tollgate`` command as a process of its own: its real exit status and stderr."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from tollgate_auth.cli import main; main()", *argv],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )


class _HtmlErrorPage(BaseHTTPRequestHandler):
    """A proxy in front of auth that answers with an HTML error page."""

    def _page(self) -> None:
        body = b"<html><body><h1>502 Bad Gateway</h1>\n</body></html>\n"
        self.send_response(502)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _page

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def html_proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlErrorPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_errors_are_one_line_and_a_non_zero_exit(auth: Service, html_proxy: str) -> None:
    """Every failure, from the server or before it, is one `tollgate: ...` line on stderr,
    nothing on stdout, and a non-zero exit: an unknown key, a usage range the API refuses, a
    route that is not namespace/name, a short webhook secret, a wrong token, no token, nothing
    listening, and an HTML error page from a proxy in front of auth."""
    ok = ["--url", auth.url, "--token", ADMIN_TOKEN]
    cases = [
        ([*ok, "keys", "show", "nosuchkey"], "404: no such key: nosuchkey"),
        ([*ok, "usage", "nosuchkey", "--from", "yesterday"], "422: "),
        ([*ok, "cache", "purge", "eod"], "422: "),
        (
            [*ok, "keys", "webhook", "k1", "--url", "https://o.example/h", "--secret", "short"],
            "422: ",
        ),
        (["--url", auth.url, "--token", "wrong-token-0123456789", "keys", "list"], "401: "),
        (["--url", auth.url, "keys", "list"], "no admin token"),
        (["--url", "http://127.0.0.1:1", "--token", ADMIN_TOKEN, "keys", "list"], "cannot reach"),
        (["--url", html_proxy, "--token", ADMIN_TOKEN, "keys", "list"], "not a JSON answer"),
    ]
    for argv, said in cases:
        out = cli(argv)
        assert out.returncode != 0, argv
        assert out.stdout == "", argv
        lines = out.stderr.splitlines()
        assert len(lines) == 1, (argv, out.stderr)
        assert lines[0].startswith("tollgate: "), (argv, out.stderr)
        assert said in lines[0], (argv, out.stderr)
    usage = cli([*ok, "usage", "nosuchkey", "--from", "yesterday"]).stderr
    assert "from" in usage  # the 422 names the field


def test_a_negative_topup_is_refused_before_anything_is_sent(auth: Service) -> None:
    """keys topup ID -5, as a process: exit 2, the reason on stderr, the balance untouched."""
    ok = ["--url", auth.url, "--token", ADMIN_TOKEN, "--json"]
    created = cli([*ok, "keys", "create", "--credits", "10"])
    key_id = json.loads(created.stdout)["id"]
    out = cli([*ok, "keys", "topup", key_id, "-5"])
    assert out.returncode == 2
    assert out.stdout == ""
    assert "must be at least 1, not -5 (to take credits away, use set-credits)" in out.stderr
    assert json.loads(cli([*ok, "keys", "show", key_id]).stdout)["credits"] == 10


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
