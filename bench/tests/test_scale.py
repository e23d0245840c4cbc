"""The --scale curves' inputs and table (pure: nothing is started)."""

from __future__ import annotations

from bench.report import Fixed, Row, Sample
from bench.scale import key_records, ratio_rows, render, route_table, summary
from bench.shapes import BODIES, bodies_routes, file_path, race_routes
from tollgate_common.contracts.routes import RouteTable, parse_documents
from tollgate_common.ledger.layout import record_key
from tollgate_gateway.settings import GatewaySettings


def test_route_table_has_the_measured_route_and_company() -> None:
    """n routes: /live first, the others alternately elsewhere and under /live, all distinct."""
    table = RouteTable.loads(route_table(6, 9000))
    prefixes = [r.spec.path_prefix for r in table.routes]
    assert prefixes == ["/live", "/r1", "/live/x2", "/r3", "/live/x4", "/r5"]
    live = table.routes[0].spec
    assert (live.cache.ttl_seconds, live.endpoints[0].url) == (0, "http://127.0.0.1:9000/eod")


def test_route_table_of_one_is_only_the_measured_route() -> None:
    """The smallest case has nothing but /live."""
    assert [r.spec.path_prefix for r in RouteTable.loads(route_table(1, 9000)).routes] == ["/live"]


def test_key_records_are_distinct_and_shaped_like_the_auth_service() -> None:
    """Filler keys: one record per key, under the auth service's record prefix, on the plan."""
    recs = list(key_records(5, 9, "bench"))
    assert len(recs) == len({k for k, _ in recs}) == 4
    for k, f in recs:
        prefix = record_key(str(f["id"]), "")
        assert k.startswith(prefix)
        assert len(k) == len(prefix) + 64
    assert [f["id"] for _, f in recs] == ["s0000005", "s0000006", "s0000007", "s0000008"]
    assert {f["plan"] for _, f in recs} == {"bench"}
    assert {f["revoked"] for _, f in recs} == {0}


def test_ratio_rows_are_over_the_smallest_case() -> None:
    """Each size's CPU (and whole-path CPU) per request over the first row's."""
    rows = [
        Row("1", [Sample(1, 1, 1, cpu_us=50.0, path_cpu_us=60.0)]),
        Row("10", [Sample(1, 1, 1, cpu_us=55.0, path_cpu_us=90.0)]),
        Row("100", [Sample(1, 1, 1)]),
    ]
    assert ratio_rows(rows) == [("1", 1.0, 1.0), ("10", 1.1, 1.5), ("100", None, None)]


def test_render_names_every_case() -> None:
    """The curve's table has a header and one line per size."""
    rows = [Row("routes 1", [Sample(10, 1, 2, cpu_us=50.0, path_cpu_us=50.0)])]
    text = render("--scale routes", rows)
    assert text.splitlines()[0] == "--scale routes"
    assert text.splitlines()[-1].split() == [
        "routes",
        "1",
        "10",
        "2.00",
        "50.0",
        "1.00",
        "50.0",
        "1.00",
    ]


def test_race_routes_race_the_first_k_upstreams() -> None:
    """/race<k> races the first k of the upstreams, cache off."""
    routes = parse_documents(race_routes([9001, 9002, 9003]))
    by_prefix = {r.spec.path_prefix: r.spec for r in routes}
    assert sorted(by_prefix) == ["/race1", "/race2", "/race3"]
    assert [e.url for e in by_prefix["/race2"].endpoints] == [
        "http://127.0.0.1:9001/eod",
        "http://127.0.0.1:9002/eod",
    ]
    assert {s.strategy for s in by_prefix.values()} == {"race"}
    assert {s.cache.ttl_seconds for s in by_prefix.values()} == {0}


def test_bodies_route_passes_any_2xx_and_the_largest_body_streams() -> None:
    """The files route takes a 2xx whatever its body; the largest body is over the gateway's
    default response buffer (the streaming path), the others under it."""
    (route,) = parse_documents(bodies_routes(9001))
    assert (route.spec.success_when, route.spec.path_prefix) == ("http2xx", "/files")
    buffer = GatewaySettings().response_buffer_bytes
    assert [size > buffer for size, _ in BODIES] == [False, False, False, True]
    assert file_path(1024) == "/api/v1/files/1024.bin"


def test_the_connections_goal_is_read_at_a_fixed_rate() -> None:
    """The conns curve's goal compares p99 at one fixed rate (open loop), not wrk's closed-loop
    p99, which grows with the connection count on any saturated server (Little's law); a case
    that fell short of the rate says what it held."""
    rows = [
        Row("conns 64", [Sample(4000, 10, 20)], fixed=Fixed(2000, 1.0, 4.0, 2000)),
        Row("conns 1,024", [Sample(4000, 200, 700)], fixed=Fixed(2000, 1.5, 6.0, 1500)),
    ]
    assert summary("conns", rows) == [
        "p99 at 2,000 req/s, conns 1,024 / conns 64: 1.50 (goal <= 2)"
    ]
    lines = render("--scale conns", rows).splitlines()
    assert lines[1].endswith("p99 ms @ 2,000/s")
    assert lines[-1].endswith("6.00 (held 1,500/s)")
