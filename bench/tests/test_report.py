"""Parsing wrk output and the ratio table (pure)."""

from __future__ import annotations

from bench.report import Row, Sample, parse_wrk, percentile, table

WRK = """Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.61ms  512.00us   9.80ms   80.00%
  Latency Distribution
     50%    2.50ms
     75%    2.80ms
     90%    3.10ms
     99%  850.00us
  120000 requests in 5.00s, 30.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  24000.50
Transfer/sec:      6.00MB
"""


def test_parse_wrk() -> None:
    """Requests/sec, p50, p99 (unit-converted) and errors come out of wrk's text."""
    s = parse_wrk(WRK)
    assert s.rps == 24000.50
    assert s.p50_ms == 2.5
    assert s.p99_ms == 0.85
    assert s.errors == 7


def test_row_takes_medians() -> None:
    """A row reports the median of its rounds."""
    r = Row("x", [Sample(10, 1, 5), Sample(30, 3, 9), Sample(20, 2, 7)])
    assert (r.rps, r.p50, r.p99) == (20, 2, 7)


def test_table_ratios() -> None:
    """Ratios are to direct and to traefik."""
    rows = [
        Row("direct", [Sample(100, 1, 1)]),
        Row("traefik", [Sample(50, 1, 1)]),
        Row("tollgate", [Sample(75, 1, 1)]),
    ]
    line = table(rows).splitlines()[-1].split()
    assert line[4:6] == ["0.75", "1.50"]


def test_percentile() -> None:
    """Nearest-rank percentile."""
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([], 50) == 0.0
