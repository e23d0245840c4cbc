"""``python -m bench.instructions A B ...``: instructions per request of gateway rows, counted.

    uv run --frozen --group bench python -m bench.instructions \\
        "tollgate miss" "tollgate miss traced 0%" "tollgate miss traced 1%"

This VM's speed drifts by ±15 % within a minute and has no PMU (``perf stat`` cannot count
instructions), so a difference of a few per cent between two rows is hard to read from req/s
even in ``bench.ab``'s alternating slices. Here each row's gateway runs under valgrind's
callgrind with counting off; after a warm-up, counting is switched on for ``--seconds`` of wrk
and the process's instructions (every thread: the batch processor's export included) are divided
by the requests wrk completed. Two runs of one row agree to ~0.2 %. The counts are user-space
instructions, not time: cache misses and system calls do not show, which is what makes them
steady. Under callgrind a gateway serves ~150 requests a second, so a sampled row's sampled
requests are few (at 1 %, ~20 in 15 s): give a sampled row more seconds or read its 100 % row.
Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import glob
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import load, servers
from bench.servers import Server
from bench.targets import LOAD_CORE, Env, Target, select


@dataclass(frozen=True, slots=True)
class Count:
    row: str
    requests: int
    instructions: int

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests if self.requests else float("nan")


def total(out_file: Path) -> int:
    """Pure on the file: the instruction total of a callgrind dump (its ``summary:`` line)."""
    for line in out_file.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"{out_file}: no summary line")


def _counted(
    env: Env, t: Target, out: Path, seconds: int, conns: int, headers: list[str]
) -> tuple[Count, Server]:
    plain = servers.pinned

    def under_callgrind(core: str, argv: list[str]) -> list[str]:
        if "tollgate_gateway" not in argv:  # the row's helpers run as they are
            return plain(core, argv)
        vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        return plain(core, [*vg, *argv])

    servers.pinned = under_callgrind
    try:
        server = t.start(env)
    finally:
        servers.pinned = plain
    url = t.url(env, server)
    load.wrk(LOAD_CORE, url, 3, conns, headers)  # warm-up, not counted
    pid = str(server.proc.pid)
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    sample = load.wrk(LOAD_CORE, url, seconds, conns, headers)
    subprocess.run(["callgrind_control", "-d", "counted", pid], check=True, capture_output=True)
    time.sleep(1)
    dumps = sorted(glob.glob(f"{out}.*")) or [str(out)]
    return Count(t.name, sample.requests, max(total(Path(d)) for d in dumps)), server


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bench.instructions", description=__doc__.split("\n")[0]
    )
    ap.add_argument("rows", nargs="+", help="gateway rows, the first the base of the ratios")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--header", action="append", default=[], help="'Name: value' on every request")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("bench.instructions needs valgrind: apt-get install valgrind")
    rows = []
    for name in args.rows:
        found = [t for t in select(name, variants=True, peers_="all") if t.name == name]
        if not found:
            raise SystemExit(f"unknown row {name!r} (python -m bench --help lists them)")
        rows.append(found[0])
    work = Path(tempfile.mkdtemp(prefix="tollgate-instructions-"))
    env = Env(work)
    counts: list[Count] = []
    try:
        for i, t in enumerate(rows):
            c, server = _counted(
                env, t, work / f"callgrind-{i}.out", args.seconds, args.conns, args.header
            )
            env.stop_one(server)  # the next row's gateway alone under callgrind; helpers stay
            counts.append(c)
            ratio = c.per_request / counts[0].per_request
            print(
                f"{c.row:>32}: {c.per_request:9,.0f} instructions/request  "
                f"{ratio:.3f}x  ({c.requests:,} requests)",
                flush=True,
            )
    finally:
        env.stop()


if __name__ == "__main__":
    main()
