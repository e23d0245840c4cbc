"""The gateway's lean metrics expose what prometheus-client's own classes would."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tollgate_gateway.metrics import Metrics


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(m.registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_histograms_and_inflight_are_exposed() -> None:
    m = Metrics()
    m.child(m.requests, "eod", "200").inc()
    m.child(m.requests, "eod", "200").inc()
    m.child(m.requests, "eod", "502").inc()
    for v in (0.001, 0.002, 0.3, 99.0):  # 0.001 is on a bound: le is inclusive
        m.child(m.latency, "eod").observe(v)
    m.inflight.inc()
    s = samples(m)
    assert s[("tollgate_gateway_requests_total", (("route", "eod"), ("status", "200")))] == 2
    assert s[("tollgate_gateway_requests_total", (("route", "eod"), ("status", "502")))] == 1
    bucket = "tollgate_gateway_request_seconds_bucket"
    assert s[(bucket, (("le", "0.001"), ("route", "eod")))] == 1
    assert s[(bucket, (("le", "0.0025"), ("route", "eod")))] == 2
    assert s[(bucket, (("le", "0.5"), ("route", "eod")))] == 3
    assert s[(bucket, (("le", "30.0"), ("route", "eod")))] == 3
    assert s[(bucket, (("le", "+Inf"), ("route", "eod")))] == 4
    assert s[("tollgate_gateway_request_seconds_count", (("route", "eod"),))] == 4
    assert abs(s[("tollgate_gateway_request_seconds_sum", (("route", "eod"),))] - 99.303) < 1e-9
    assert s[("tollgate_gateway_inflight", ())] == 1


def test_a_wrong_label_count_is_refused() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="takes labels"):
        m.child(m.requests, "only-route")
