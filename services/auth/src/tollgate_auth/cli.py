"""``tollgate``: the operators' command line for keys and plans, over the admin API.

    tollgate keys create --credits 1000 --plan free [--name NAME] [--expires-in DAYS]
    tollgate keys webhook ID --url https://... --secret S | --clear
    tollgate keys customer ID cus_...
    tollgate keys list | show ID | topup ID N (N >= 1) | set-credits ID N | revoke ID
    tollgate keys expire ID --in DAYS | --never
    tollgate plans list | show NAME | delete NAME
    tollgate plans set NAME --rate 5 --burst 10 [--cost /eod=2 ...]
        [--refill N --every hourly|daily|monthly [--day D] [--topup-to CEILING]]
    tollgate usage [KEY_ID] [--from WHEN] [--to WHEN] [--by hour|day|route] [--csv]
    tollgate cache purge ROUTE [PREFIX]

Reads TOLLGATE_URL (default http://127.0.0.1:8081) and TOLLGATE_ADMIN_TOKEN, or --url/--token.
``--json`` prints the API's JSON instead of a table; ``usage --csv`` prints CSV.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx

KEY_COLUMNS = ["id", "prefix", "name", "plan", "credits", "revoked", "expires_at"]
SHOW_COLUMNS = [*KEY_COLUMNS, "next_refill"]
PLAN_COLUMNS = ["name", "rate", "burst", "costs", "refill"]
USAGE_COUNTS = ["requests", "charged", "refunded", "hits", "4xx", "5xx", "refilled"]
PURGE_COLUMNS = ["route", "prefix", "deleted"]


class CliError(Exception):
    pass


def table(rows: Sequence[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table (pure)."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict):
        return ",".join(f"{k}={x}" for k, x in v.items() if x is not None) or "-"
    if isinstance(v, float) and v > 1e9:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(v))
    return str(v)


def credits_amount(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of credits, at least ``minimum`` (pure)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < minimum:
            hint = " (to take credits away, use set-credits)" if n < 0 < minimum else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {n}{hint}")
        return n

    return parse


def _verb(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    text: str,
    parents: list[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """A subcommand whose one-line help shows in its noun's list and atop its own --help."""
    return verbs.add_parser(name, help=text, description=text, parents=parents)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tollgate",
        description="Manage Tollgate API keys, plans and the response cache; read key usage.",
    )
    p.add_argument(
        "--url",
        default=os.environ.get("TOLLGATE_URL", "http://127.0.0.1:8081"),
        help="auth service admin URL (TOLLGATE_URL)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("TOLLGATE_ADMIN_TOKEN", ""),
        help="admin token (TOLLGATE_ADMIN_TOKEN)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = p.add_subparsers(dest="noun", required=True)
    # --json is accepted after the verb too (tollgate keys list --json)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    on = [common]

    keys = _verb(sub, "keys", "API keys: create, list, top up, revoke", []).add_subparsers(
        dest="verb", required=True
    )
    c = _verb(keys, "create", "create a key (the key is shown once)", on)
    c.add_argument("--credits", type=credits_amount(0), default=0, help="starting balance")
    c.add_argument("--plan", default="", help="plan name (rate limit and route costs)")
    c.add_argument("--name", default="", help="a label for people")
    c.add_argument("--expires-in", type=float, metavar="DAYS", help="expire after DAYS")
    _verb(keys, "list", "list keys", on)
    _verb(keys, "show", "show one key", on).add_argument("id", help="key id")
    _verb(keys, "revoke", "revoke a key for good", on).add_argument("id", help="key id")
    t = _verb(keys, "topup", "add credits to a key's balance", on)
    t.add_argument("id", help="key id")
    t.add_argument("amount", type=credits_amount(1), help="credits to add (1 or more)")
    sc = _verb(keys, "set-credits", "set a key's balance", on)
    sc.add_argument("id", help="key id")
    sc.add_argument("amount", type=credits_amount(0), help="the new balance (0 or more)")
    e = _verb(keys, "expire", "set or clear a key's expiry", on)
    e.add_argument("id", help="key id")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--in", dest="days", type=float, metavar="DAYS", help="expire in DAYS")
    g.add_argument("--never", action="store_true", help="never expire")
    a = _verb(keys, "plan", "attach a plan to a key", on)
    a.add_argument("id", help="key id")
    a.add_argument("plan", help="plan name")
    w = _verb(
        keys,
        "webhook",
        "set or clear the owner webhook (signed): credits.low, credits.exhausted, "
        "credits.refilled, key.expiring",
        on,
    )
    w.add_argument("id", help="key id")
    wg = w.add_mutually_exclusive_group(required=True)
    wg.add_argument("--url", dest="webhook_url", help="https://... the owner's endpoint")
    wg.add_argument("--clear", action="store_true", help="remove the webhook and its secret")
    w.add_argument(
        "--secret",
        default=os.environ.get("TOLLGATE_WEBHOOK_SECRET", ""),
        help="signing secret, 16+ characters (TOLLGATE_WEBHOOK_SECRET: keeps it off the "
        "command line)",
    )
    cu = _verb(keys, "customer", "set the key's billing customer (Stripe cus_...)", on)
    cu.add_argument("id", help="key id")
    cu.add_argument("customer", help='customer id; "" clears it')

    plans = _verb(sub, "plans", "plans: rate limits and route costs", []).add_subparsers(
        dest="verb", required=True
    )
    _verb(plans, "list", "list plans", on)
    _verb(plans, "show", "show one plan", on).add_argument("name", help="plan name")
    _verb(plans, "delete", "delete a plan", on).add_argument("name", help="plan name")
    s = _verb(plans, "set", "create or replace a plan", on)
    s.add_argument("name", help="plan name")
    s.add_argument("--rate", type=float, default=0, help="requests per second (0 = unlimited)")
    s.add_argument("--burst", type=int, default=1, help="requests allowed at once")
    s.add_argument(
        "--cost", action="append", default=[], metavar="PREFIX=N", help="credits per request"
    )
    s.add_argument(
        "--refill", type=credits_amount(1), metavar="N", help="credits a refill adds (with --every)"
    )
    s.add_argument("--every", choices=["hourly", "daily", "monthly"], help="the refill's interval")
    s.add_argument(
        "--day", type=int, metavar="D", help="monthly: day of the month, 1-31 (31: the last day)"
    )
    s.add_argument(
        "--topup-to",
        type=credits_amount(1),
        metavar="CEILING",
        help="top up (never past CEILING) instead of adding",
    )

    u = _verb(sub, "usage", "usage of one key (by hour, day or route) or totals of every key", on)
    u.add_argument("key_id", nargs="?", help="key id; without it: every key's totals")
    when = "Unix seconds or ISO 8601, UTC unless a zone is given"
    u.add_argument(
        "--from", dest="start", metavar="WHEN", help=f"start ({when}); default: a day ago"
    )
    u.add_argument(
        "--to", dest="end", metavar="WHEN", help=f"end, exclusive ({when}); default: now"
    )
    u.add_argument(
        "--by",
        choices=["hour", "day", "route"],
        default="hour",
        help="one row per hour, per UTC day or per route (default hour)",
    )
    u.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    cache = _verb(sub, "cache", "the gateways' response cache", []).add_subparsers(
        dest="verb", required=True
    )
    pg = _verb(cache, "purge", "remove a route's cached answers from Redis and every gateway", on)
    pg.add_argument("route", help="the route: namespace/name of its ApiBackend")
    pg.add_argument(
        "prefix", nargs="?", default="", help="only paths under /api/v1 starting with it (/eod/A)"
    )
    return p


def request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None, list[str]]:
    """Method, path, body and table columns for a parsed command (pure)."""
    n, v = args.noun, getattr(args, "verb", "")
    if n == "keys":
        if v == "create":
            expires = time.time() + args.expires_in * 86400 if args.expires_in else None
            body = {
                "credits": args.credits,
                "plan": args.plan,
                "name": args.name,
                "expires_at": expires,
            }
            return "POST", "/v1/admin/keys", body, ["key", *KEY_COLUMNS]
        if v == "list":
            return "GET", "/v1/admin/keys", None, KEY_COLUMNS
        if v == "show":
            return "GET", f"/v1/admin/keys/{args.id}", None, SHOW_COLUMNS
        if v == "revoke":
            return "POST", f"/v1/admin/keys/{args.id}/revoke", None, KEY_COLUMNS
        if v == "topup":
            return "POST", f"/v1/admin/keys/{args.id}/credits", {"add": args.amount}, KEY_COLUMNS
        if v == "set-credits":
            return "POST", f"/v1/admin/keys/{args.id}/credits", {"set": args.amount}, KEY_COLUMNS
        if v == "expire":
            at = 0.0 if args.never else time.time() + args.days * 86400
            return "PATCH", f"/v1/admin/keys/{args.id}", {"expires_at": at}, KEY_COLUMNS
        if v == "plan":
            return "PATCH", f"/v1/admin/keys/{args.id}", {"plan": args.plan}, KEY_COLUMNS
        if v == "webhook":
            if args.clear:
                hook: dict[str, Any] = {"webhook_url": ""}
            elif not args.secret:
                raise CliError("--url needs a signing secret: --secret or TOLLGATE_WEBHOOK_SECRET")
            else:
                hook = {"webhook_url": args.webhook_url, "webhook_secret": args.secret}
            return "PATCH", f"/v1/admin/keys/{args.id}", hook, [*KEY_COLUMNS, "webhook_url"]
        if v == "customer":
            body = {"customer": args.customer}
            return "PATCH", f"/v1/admin/keys/{args.id}", body, [*KEY_COLUMNS, "customer"]
    if n == "plans":
        if v == "list":
            return "GET", "/v1/admin/plans", None, PLAN_COLUMNS
        if v == "show":
            return "GET", f"/v1/admin/plans/{args.name}", None, PLAN_COLUMNS
        if v == "delete":
            return "DELETE", f"/v1/admin/plans/{args.name}", None, PLAN_COLUMNS
        if v == "set":
            costs = {}
            for item in args.cost:
                prefix, _, amount = item.partition("=")
                if not prefix.startswith("/") or not amount.isdigit():
                    raise CliError(f"--cost wants PREFIX=N like /eod=2, not {item!r}")
                costs[prefix] = int(amount)
            body = {"name": args.name, "rate": args.rate, "burst": args.burst, "costs": costs}
            body["refill"] = refill(args)
            return "PUT", f"/v1/admin/plans/{args.name}", body, PLAN_COLUMNS
    if n == "usage":
        query = {k: v for k, v in (("from", args.start), ("to", args.end)) if v is not None}
        if args.key_id is None:
            return "GET", f"/v1/admin/usage?{urlencode(query)}", None, ["key_id", *USAGE_COUNTS]
        query["granularity"] = "day" if args.by == "route" else args.by
        first = "route" if args.by == "route" else "start"
        path = f"/v1/admin/keys/{args.key_id}/usage?{urlencode(query)}"
        return "GET", path, None, [first, *USAGE_COUNTS]
    if n == "cache" and v == "purge":
        query = {"route": args.route, **({"prefix": args.prefix} if args.prefix else {})}
        return "DELETE", f"/v1/admin/cache?{urlencode(query)}", None, PURGE_COLUMNS
    raise CliError(f"unknown command {n} {v}")


def refill(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``refill`` of ``plans set`` from its options (pure); the API validates the rest."""
    if args.refill is None:
        if args.every or args.day or args.topup_to:
            raise CliError("--every, --day and --topup-to need --refill N")
        return None
    if not args.every:
        raise CliError("--refill needs --every hourly|daily|monthly")
    out: dict[str, Any] = {"amount": args.refill, "interval": args.every}
    if args.day is not None:
        out["day_of_month"] = args.day
    if args.topup_to is not None:
        out.update(mode="topup", ceiling=args.topup_to)
    return out


def usage_rows(args: argparse.Namespace, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a usage answer: per key, per route or per bucket (pure)."""
    if args.key_id is None:
        return [{"key_id": k["key_id"], **k["total"]} for k in data["keys"]]
    if args.by == "route":
        return [{"route": r or "-", **c} for r, c in sorted(data["routes"].items())]
    return [{"start": float(b["start"]), **b["counts"]} for b in data["buckets"]]


def to_csv(rows: Sequence[dict[str, Any]], columns: list[str]) -> str:
    """Rows as CSV with a header line; times as ISO 8601 UTC (pure)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_iso(r[c]) if c == "start" else r.get(c, "") for c in columns])
    return out.getvalue().rstrip("\n")


def _one_line(message: Any) -> str:
    """An error for stderr on one line, whatever the server put in it (pure)."""
    return " ".join(str(message).split())


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def run(argv: Sequence[str] | None = None, client: httpx.Client | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        method, path, body, columns = request(args)
        if not args.token:
            raise CliError("no admin token: set TOLLGATE_ADMIN_TOKEN or pass --token")
        headers = {"Authorization": f"Bearer {args.token}"}
        if client is not None:
            r = client.request(method, path, json=body, headers=headers)
        else:
            with httpx.Client(base_url=args.url, timeout=10) as http:  # closed: no socket left
                r = http.request(method, path, json=body, headers=headers)
    except CliError as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"tollgate: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    if r.status_code == 204:
        return 0
    try:
        data = r.json()
    except ValueError:  # a proxy's error page, or --url is not auth's admin API
        what = r.headers.get("content-type", "no content type")
        print(
            f"tollgate: {r.status_code} from {args.url}: not a JSON answer ({what})",
            file=sys.stderr,
        )
        return 1
    if not r.is_success:
        message = data.get("message", data) if isinstance(data, dict) else data
        print(f"tollgate: {r.status_code}: {_one_line(message)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
    elif args.noun == "usage":
        rows = usage_rows(args, data)
        print(to_csv(rows, columns) if args.csv else table(rows, columns))
    else:
        print(table(data if isinstance(data, list) else [data], columns))
        if args.noun == "keys" and args.verb == "create":
            print("\nStore the key now: it is not shown again.")
    return 0


def main() -> None:
    sys.exit(run())
