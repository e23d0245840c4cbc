"""Load-generator output in, the one table and the JSON out (pure: no processes, no sockets)."""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Sample:
    """One closed-loop run (wrk)."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    requests: int = 0
    cpu_us: float | None = None  # the server's CPU time per request (all its processes)
    # ... plus its helper services' (auth, ratelimit service, Redis, forwardAuth endpoint): the
    # metered rows of different designs put their work on different cores.
    path_cpu_us: float | None = None


@dataclass
class Fixed:
    """One open-loop run at a fixed rate (oha or bench.fixedrate)."""

    rate: float
    p50_ms: float
    p99_ms: float
    rps: float
    errors: int = 0


@dataclass
class Row:
    name: str
    samples: list[Sample] = field(default_factory=list)
    fixed: Fixed | None = None
    rss_mb: float | None = None

    @property
    def rps(self) -> float:
        return statistics.median(s.rps for s in self.samples) if self.samples else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(s.p50_ms for s in self.samples) if self.samples else 0.0

    @property
    def p99(self) -> float:
        return statistics.median(s.p99_ms for s in self.samples) if self.samples else 0.0

    @property
    def cpu_us(self) -> float | None:
        """Median CPU µs per request: unlike req/s, barely moved by other load on the machine."""
        values = [s.cpu_us for s in self.samples if s.cpu_us is not None]
        return statistics.median(values) if values else None

    @property
    def path_cpu_us(self) -> float | None:
        """Median CPU µs per request of the whole path: the server and the services it calls."""
        values = [s.path_cpu_us for s in self.samples if s.path_cpu_us is not None]
        return statistics.median(values) if values else None

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.samples) + (self.fixed.errors if self.fixed else 0)


def parse_wrk(text: str) -> Sample:
    """Requests/sec, the 50%/99% lines of ``wrk --latency`` and the error counts."""
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m is None:
        raise ValueError(f"not wrk --latency output: {text[:200]!r}")
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))\s*$", text, re.M))
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    if "50" not in lat or "99" not in lat:
        raise ValueError(f"no latency distribution in wrk output: {text[-400:]!r}")
    done = re.search(r"^\s+(\d+) requests in", text, re.M)
    requests = int(done.group(1)) if done else 0
    return Sample(float(m.group(1)), latency_ms(lat["50"]), latency_ms(lat["99"]), errors, requests)


def latency_ms(s: str) -> float:
    """wrk's ``850.00us`` / ``2.50ms`` / ``1.02s`` in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if m is None:
        raise ValueError(f"not a wrk latency: {s!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_oha(text: str, rate: float) -> Fixed:
    """``oha --output-format json``: seconds in, milliseconds out; non-2xx and errors counted."""
    d = json.loads(text)
    pct = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution") or {}
    errors = sum(n for code, n in codes.items() if not code.startswith("2"))
    errors += sum((d.get("errorDistribution") or {}).values())
    return Fixed(
        rate,
        _s_to_ms(pct.get("p50")),
        _s_to_ms(pct.get("p99")),
        float(d["summary"]["requestsPerSec"]),
        errors,
    )


def _s_to_ms(seconds: float | None) -> float:
    return 0.0 if seconds is None else seconds * 1000


def parse_fixedrate(text: str, rate: float, seconds: float) -> Fixed:
    """bench.fixedrate's one line: ``sent ok p50_ms p99_ms``."""
    sent, ok, p50, p99 = text.split()
    return Fixed(rate, float(p50), float(p99), int(ok) / seconds, int(sent) - int(ok))


def fixed_rate_for(rps: float, rate: float) -> float:
    """The fixed-rate pass runs at ``rate``, or at half of what a target can do at all (the seed
    design cannot hold 2,000 req/s; its p99 at an overload would measure only the queue). A rate
    of 0 skips the pass."""
    if rate <= 0:
        return 0.0
    return rate if rps >= 1.25 * rate else max(1.0, round(rps / 2))


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def cpu_ratio(peer_cpu: float | None, cpu: float | None) -> float | None:
    """How many times less CPU a request costs here than at the peer (>1: cheaper)."""
    return None if peer_cpu is None or not cpu else peer_cpu / cpu


def table(rows: list[Row], rate: float, direct: str = "direct", peer: str = "traefik") -> str:
    """The one table: throughput, latency, ratios to direct and to the peer, p99 at the fixed
    rate (with the rate, when a target ran at a lower one), RSS per worker, the server's CPU per
    request and the peer's CPU per request over it (the same ratio, robust to a busy machine),
    the whole path's CPU per request (server + the services it calls), errors."""
    by = {r.name: r for r in rows}
    base = by[direct].rps if direct in by else 0.0
    ref = by[peer].rps if peer in by else 0.0
    head = ["target", "req/s", "p50 ms", "p99 ms", "x direct", f"x {peer}"]
    head += [f"p99@{rate:.0f}/s ms", "RSS MB", "CPU us/req", f"CPU x {peer}", "path CPU us/req"]
    head += ["errors"]
    ref_cpu = by[peer].cpu_us if peer in by else None
    lines = [head]
    for r in rows:
        lines.append(
            [
                r.name,
                f"{r.rps:,.0f}",
                f"{r.p50:.2f}",
                f"{r.p99:.2f}",
                _fmt(ratio(r.rps, base)),
                _fmt(ratio(r.rps, ref)),
                _fixed_cell(r.fixed, rate),
                "-" if r.rss_mb is None else f"{r.rss_mb:.0f}",
                "-" if r.cpu_us is None else f"{r.cpu_us:.1f}",
                _fmt(cpu_ratio(ref_cpu, r.cpu_us)),
                "-" if r.path_cpu_us is None else f"{r.path_cpu_us:.1f}",
                str(r.errors),
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = []
    for j, row in enumerate(lines):
        cells = zip(row, widths, strict=True)
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))
        )
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _fixed_cell(f: Fixed | None, rate: float) -> str:
    if f is None:
        return "-"
    return f"{f.p99_ms:.2f}" if f.rate == rate else f"{f.p99_ms:.2f} (@{f.rate:.0f}/s)"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def as_json(
    rows: list[Row], meta: dict[str, Any], direct: str = "direct", peer: str = "traefik"
) -> str:
    by = {r.name: r for r in rows}
    base = by[direct].rps if direct in by else 0.0
    ref = by[peer].rps if peer in by else 0.0
    out = [
        {
            "name": r.name,
            "rps": r.rps,
            "p50_ms": r.p50,
            "p99_ms": r.p99,
            "x_direct": ratio(r.rps, base),
            "x_" + peer: ratio(r.rps, ref),
            "cpu_us": r.cpu_us,
            "path_cpu_us": r.path_cpu_us,
            "fixed": None if r.fixed is None else vars(r.fixed),
            "rss_mb": r.rss_mb,
            "errors": r.errors,
            "rounds": [vars(s) for s in r.samples],
        }
        for r in rows
    ]
    return json.dumps({"meta": meta, "rows": out}, indent=2)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (bench.fixedrate's latencies)."""
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]
