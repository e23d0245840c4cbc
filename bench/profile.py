"""Profile one bench row under load with py-spy: where a gateway worker's CPU goes.

    uv run --frozen --group bench python -m bench.profile --row "tollgate miss" --seconds 10

Starts the row's servers as ``python -m bench`` does (server on core 1, load on core 0), drives
it with wrk for the given time while py-spy samples the worker without pausing it, and prints the
top frames by self and by inclusive time. The raw collapsed stacks are kept under bench/results/
(flamegraph.pl or speedscope read them). Native frames (uvloop, httptools) are not resolved: time
in them shows as self time of the Python frame that called into them (``run`` of the loop for the
loop's own work).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from bench import load, stacks
from bench.servers import venv_bin
from bench.targets import LOAD_CORE, Env, select

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    ap.add_argument("--row", default="tollgate miss", help="a bench row (python -m bench --help)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--lines", action="store_true", help="per line, not per function")
    ap.add_argument("--native", action="store_true", help="with C frames (uvloop, httptools)")
    ap.add_argument(
        "--nonblocking",
        action="store_true",
        help="sample without pausing the worker (less overhead, frames sometimes misread)",
    )
    args = ap.parse_args()
    target = next(t for t in select(args.row, variants=True) if t.name == args.row)
    env = Env(Path(tempfile.mkdtemp(prefix="tollgate-profile-")))
    RESULTS.mkdir(exist_ok=True)
    # the row's name outside the format: a row's "%" ("traced 1%") is not a strftime directive
    slug = args.row.replace(" ", "-").replace("%", "pct")
    raw = RESULTS / f"profile-{slug}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    try:
        server = target.start(env)
        url = target.url(env, server)
        load.wrk(LOAD_CORE, url, 2, args.conns)  # warm-up
        spy = subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, *spy_argv(server.worker(), args, raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            sample = load.wrk(LOAD_CORE, url, args.seconds, args.conns)
        finally:
            spy.wait(args.seconds + 30)
    finally:
        env.stop()
    print(f"{args.row}: {sample.rps:,.0f} req/s under py-spy (sampling costs some)")
    print(stacks.render(stacks.parse(raw.read_text()), args.top))
    print(f"\ncollapsed stacks: {raw}")


def spy_argv(pid: int, args: argparse.Namespace, raw: Path) -> list[str]:
    argv = [venv_bin("py-spy"), "record", "--pid", str(pid), "--duration", str(args.seconds)]
    argv += ["--rate", "200", "--format", "raw", "--output", str(raw)]
    if not args.lines:
        argv.append("--function")
    if args.nonblocking:
        argv.append("--nonblocking")
    if args.native:
        argv.append("--native")
    return argv


if __name__ == "__main__":
    main()
