"""What ``make run`` prints: the banner, and what went wrong when something did (pure text)."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ANY_ADDRESS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Endpoints:
    """Where the running stack answers, as the banner shows it."""

    host: str  # the listen address
    connect: str  # the address to reach it on from this machine
    gateway: int
    auth: int
    upstreams: tuple[int, int]
    run_dir: Path

    @property
    def gateway_url(self) -> str:
        return f"http://{self.connect}:{self.gateway}"

    @property
    def auth_url(self) -> str:
        return f"http://{self.connect}:{self.auth}"


def connect_host(host: str) -> str:
    """The address a local client uses to reach a server listening on ``host``."""
    return "127.0.0.1" if host in ANY_ADDRESS else host


def exposure(host: str) -> str:
    if host in ANY_ADDRESS:
        return (
            f"Listening on {host or '0.0.0.0'} (every interface): anyone who can reach this "
            "machine can use the admin token below."
        )
    return f"Listening on {host} only (--host or TOLLGATE_DEV_HOST changes it)."


def banner(ep: Endpoints, key: str | None, admin_token: str) -> str:
    q = f"?api_key={key}" if key else ""
    lines = [
        "",
        "Tollgate is running.",
        f"  {exposure(ep.host)}",
        "",
        "  Try it:",
        f"    curl -i '{ep.gateway_url}/api/v1/eod/AAPL{q}'",
        "  (run it twice: the second answer says X-Cache: HIT)",
        "",
    ]
    if key:
        lines += [
            f"  Demo key (small credit balance; spend it to see 402, hammer it to see 429): {key}",
            f"  Admin token (dev mode only): {admin_token}",
            f"    TOLLGATE_URL={ep.auth_url} TOLLGATE_ADMIN_TOKEN={admin_token} uv run tollgate"
            " keys list",
            "",
        ]
    ports = " ".join(str(p) for p in ep.upstreams)
    control = f"curl -s -XPOST {ep.connect}:$p/_control -d"
    lines += [
        "  Break both demo upstreams and the notifier reports it once"
        f" ({ep.run_dir}/notifier.log):",
        f"""    for p in {ports}; do {control} '{{"mode":"error500"}}'; echo; done""",
        f"    curl -s '{ep.gateway_url}/api/v1/eod-live/X{q}'   # 502: every upstream failed",
        "  Heal them and the next good request sends the resolved message:",
        f"""    for p in {ports}; do {control} '{{"mode":"ok"}}'; echo; done""",
        f"  Logs: {ep.run_dir}/",
        "",
        "  Stop: Ctrl-C here (stops every process this stack started).",
        "",
    ]
    return "\n".join(lines)


def busy_message(busy: Sequence[tuple[str, int, str]], host: str) -> str:
    """``make run`` refused to start: which ports are taken, by what, and what to do."""
    lines = [f"make run: cannot start, ports already in use on {host}:"]
    lines += [f"  {port} ({name}): {who}" for name, port, who in busy]
    lines += [
        "Another `make run` still running? Stop it (Ctrl-C in its terminal), or start this one",
        "on other ports: make run RUN_ARGS='--port-offset 100' (or TOLLGATE_DEV_PORT_OFFSET=100).",
    ]
    return "\n".join(lines)


def how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "is gone"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def upstream_died(
    name: str, pid: int, port: int, returncode: int | None, argv: str, run_dir: Path
) -> str:
    """A demo upstream died: the stack stays up, since that is what the failure demo is about."""
    return "\n".join(
        [
            f"make run: {name} (pid {pid}, port {port}) {how_it_ended(returncode)}.",
            "  The stack stays up: the gateway's routes go on with the other upstream; with both",
            "  down it answers 502 and the notifier reports the route once"
            f" ({run_dir}/notifier.log).",
            "  Bring it back in another terminal (Ctrl-C there stops it):",
            f"    {argv}",
        ]
    )


def service_died(name: str, pid: int, returncode: int | None, log_path: Path, log_tail: str) -> str:
    """A service the stack cannot do without died: say so with its last log lines, then stop."""
    tail = log_tail.rstrip() or "(its log is empty)"
    return "\n".join(
        [
            f"make run: {name} (pid {pid}) {how_it_ended(returncode)}; stopping the stack.",
            f"  Last lines of {log_path}:",
            *(f"    {line}" for line in tail.splitlines()),
        ]
    )
