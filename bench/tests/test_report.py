"""Parsing wrk, oha and bench.fixedrate output; the ratio table and the JSON (pure)."""

from __future__ import annotations

import json

import pytest

from bench.report import (
    Fixed,
    Row,
    Sample,
    as_json,
    cpu_ratio,
    fixed_rate_for,
    latency_ms,
    parse_fixedrate,
    parse_oha,
    parse_wrk,
    percentile,
    ratio,
    table,
)

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

# oha 1.16 --output-format json, trimmed to the fields the bench reads.
OHA = {
    "summary": {"successRate": 1.0, "total": 5.0, "requestsPerSec": 1999.2},
    "latencyPercentiles": {"p50": 0.000412, "p99": 0.00123, "p99.9": 0.004},
    "statusCodeDistribution": {"200": 9990, "502": 3},
    "errorDistribution": {"connection closed": 2},
}


def test_parse_wrk() -> None:
    """Requests/sec, p50, p99 (unit-converted) and every kind of error come out of wrk's text."""
    s = parse_wrk(WRK)
    assert (s.rps, s.p50_ms, s.p99_ms, s.errors, s.requests) == (24000.50, 2.5, 0.85, 7, 120000)


def test_parse_wrk_without_errors() -> None:
    """A clean run has no error lines and counts zero."""
    clean = WRK.replace("  Socket errors: connect 0, read 2, write 0, timeout 1\n", "")
    assert parse_wrk(clean.replace("  Non-2xx or 3xx responses: 4\n", "")).errors == 0


def test_parse_wrk_rejects_other_text() -> None:
    """A failed wrk run is an error, not a zero."""
    with pytest.raises(ValueError, match="not wrk"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


@pytest.mark.parametrize(("text", "ms"), [("850.00us", 0.85), ("2.50ms", 2.5), ("1.02s", 1020.0)])
def test_latency_units(text: str, ms: float) -> None:
    """wrk's us/ms/s latencies become milliseconds."""
    assert latency_ms(text) == pytest.approx(ms)


def test_parse_oha() -> None:
    """oha's seconds become milliseconds; non-2xx answers and transport errors both count."""
    f = parse_oha(json.dumps(OHA), 2000)
    assert (f.rate, f.rps, f.errors) == (2000, 1999.2, 5)
    assert (f.p50_ms, f.p99_ms) == pytest.approx((0.412, 1.23))


def test_parse_fixedrate() -> None:
    """bench.fixedrate's line: sent, ok, p50, p99; the rate achieved is ok per second."""
    assert parse_fixedrate("10000 9998 0.400 1.500\n", 2000, 5) == Fixed(2000, 0.4, 1.5, 1999.6, 2)


def test_fixed_rate_is_lowered_for_slow_targets() -> None:
    """A target that cannot hold the rate is measured at half of its throughput."""
    assert fixed_rate_for(20_000, 2000) == 2000
    assert fixed_rate_for(340, 2000) == 170


def test_row_takes_medians() -> None:
    """A row reports the median of its rounds and the sum of their errors."""
    r = Row("x", [Sample(10, 1, 5, 1), Sample(30, 3, 9), Sample(20, 2, 7, 2)])
    assert (r.rps, r.p50, r.p99, r.errors) == (20, 2, 7, 3)


def test_ratio() -> None:
    """A ratio to a missing or zero baseline is None, not a crash."""
    assert ratio(75, 50) == 1.5
    assert ratio(75, 0) is None


def test_cpu_ratio() -> None:
    """The CPU ratio is the peer's cost over ours: above 1 means cheaper than the peer."""
    assert cpu_ratio(60.0, 40.0) == 1.5
    assert cpu_ratio(None, 40.0) is None
    assert cpu_ratio(60.0, None) is None


def test_row_cpu_is_the_median_of_measured_rounds() -> None:
    """Rounds without a CPU reading are left out of the median."""
    r = Row("x", [Sample(1, 1, 1, cpu_us=30.0), Sample(1, 1, 1), Sample(1, 1, 1, cpu_us=50.0)])
    assert r.cpu_us == 40.0
    assert Row("y", [Sample(1, 1, 1)]).cpu_us is None


def test_row_path_cpu_is_the_median_of_measured_rounds() -> None:
    """The whole path's CPU per request is a median of the rounds that measured it."""
    r = Row("x", [Sample(1, 1, 1, path_cpu_us=60.0), Sample(1, 1, 1, path_cpu_us=80.0)])
    assert r.path_cpu_us == 70.0
    assert Row("y", [Sample(1, 1, 1, cpu_us=5.0)]).path_cpu_us is None


def test_table_path_cpu_dash_when_not_measured() -> None:
    """A row without a whole-path reading shows a dash in that column."""
    line = table(rows(), 2000).splitlines()[2].split()
    assert line[0] == "direct"
    assert line[-2] == "-"


def rows() -> list[Row]:
    return [
        Row("direct", [Sample(100, 1, 1)]),
        Row("traefik", [Sample(50, 1, 1, cpu_us=60.0)], Fixed(2000, 0.5, 2.0, 2000)),
        Row(
            "tollgate",
            [Sample(75, 1, 1, cpu_us=40.0, path_cpu_us=55.0)],
            Fixed(2000, 0.4, 1.5, 2000),
            60.4,
        ),
        Row("seed", [Sample(2, 1, 1)], Fixed(1, 3, 12.5, 1)),
    ]


def test_table_ratios_and_cells() -> None:
    """Ratios are to direct and to traefik; p99 at the fixed rate, RSS in MB, CPU per request,
    traefik's CPU per request over it, and the whole path's CPU per request."""
    line = table(rows(), 2000).splitlines()[4].split()
    assert line == [
        "tollgate", "75", "1.00", "1.00", "0.75", "1.50", "1.50", "60", "40.0", "1.50", "55.0", "0"
    ]  # fmt: skip


def test_table_names_a_lower_fixed_rate() -> None:
    """A row measured at a lower fixed rate says which."""
    assert "12.50 (@1/s)" in table(rows(), 2000).splitlines()[-1]


def test_table_without_traefik() -> None:
    """Without the peer row the ratio column shows a dash."""
    line = table([Row("direct", [Sample(100, 1, 1)])], 2000).splitlines()[-1].split()
    assert line[4:6] == ["1.00", "-"]


def test_json_has_ratios_and_rounds() -> None:
    """The JSON keeps every round and the ratios the table shows."""
    data = json.loads(as_json(rows(), {"fixed_loader": "oha"}))
    tg = data["rows"][2]
    assert (tg["x_direct"], tg["x_traefik"], tg["fixed"]["p99_ms"]) == (0.75, 1.5, 1.5)
    assert tg["cpu_us"] == 40.0
    assert tg["path_cpu_us"] == 55.0
    assert tg["rounds"] == [
        {
            "rps": 75,
            "p50_ms": 1,
            "p99_ms": 1,
            "errors": 0,
            "requests": 0,
            "cpu_us": 40.0,
            "path_cpu_us": 55.0,
        }
    ]
    assert data["meta"] == {"fixed_loader": "oha"}


def test_percentile() -> None:
    """Nearest-rank percentile."""
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([], 50) == 0.0
