"""Parsing load-generator output and shaping the table (pure)."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0


@dataclass
class Row:
    name: str
    samples: list[Sample] = field(default_factory=list)
    fixed_p99_ms: float | None = None
    fixed_rps: float | None = None
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
    def errors(self) -> int:
        return sum(s.errors for s in self.samples)


def _ms(value: str, unit: str) -> float:
    return float(value) * UNITS[unit]


def parse_wrk(text: str) -> Sample:
    """Requests/sec and the 50%/99% latency lines of ``wrk --latency``."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))", text, re.M))
    p50 = _parse_latency(lat["50"])
    p99 = _parse_latency(lat["99"])
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    return Sample(rps, p50, p99, errors)


def _parse_latency(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", s)
    assert m, s
    return _ms(m.group(1), m.group(2))


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def table(rows: list[Row], direct: str = "direct", peer: str = "traefik") -> str:
    by = {r.name: r for r in rows}
    base = by[direct].rps if direct in by else 0.0
    ref = by[peer].rps if peer in by else 0.0
    head = [
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "x direct",
        "x traefik",
        "p99@fixed ms",
        "RSS MB",
        "errors",
    ]
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
                "-" if r.fixed_p99_ms is None else f"{r.fixed_p99_ms:.2f}",
                "-" if r.rss_mb is None else f"{r.rss_mb:.0f}",
                str(r.errors),
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = []
    for j, row in enumerate(lines):
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]
