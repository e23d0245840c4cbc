"""The operator's pure reconcile: spec -> table routes, statuses and events."""

from __future__ import annotations

import json
from typing import Any

from tollgate_operator.api import Backend, Condition
from tollgate_operator.reconcile import event_for, reconcile, status_patch
from tollgate_operator.table import routes_json


def backend(name: str, spec: dict[str, Any], created: str = "2026-01-01T00:00:00Z") -> Backend:
    return Backend(namespace="ns", name=name, created=created, generation=1, spec=spec)


def test_service_endpoint_becomes_cluster_dns_url() -> None:
    """A Service endpoint resolves to <name>.<namespace>.svc.<domain>:<port>."""
    b = backend(
        "eod", {"pathPrefix": "/eod", "endpoints": [{"service": {"name": "eod-a", "port": 9001}}]}
    )
    desired = reconcile([b], "cluster.local")
    assert [e.url for e in desired.routes[0].spec.endpoints] == [
        "http://eod-a.ns.svc.cluster.local:9001"
    ]
    assert desired.status["ns/eod"][0].reason == "Published"


def test_refund_on_404_reaches_the_table() -> None:
    """``refundOn404: false`` is carried into the published table (default: true)."""
    keep = backend(
        "keep", {"pathPrefix": "/k", "endpoints": [{"url": "http://a:1"}], "refundOn404": False}
    )
    plain = backend("plain", {"pathPrefix": "/p", "endpoints": [{"url": "http://a:1"}]})
    docs = json.loads(routes_json(reconcile([keep, plain], "cluster.local").routes))
    assert {d["name"]: d["spec"]["refundOn404"] for d in docs} == {
        "ns/keep": False,
        "ns/plain": True,
    }


def test_invalid_spec_is_not_ready_and_others_still_publish() -> None:
    """One bad resource does not keep the good ones out of the table."""
    good = backend("good", {"pathPrefix": "/g", "endpoints": [{"url": "http://a:1"}]})
    bad = backend("bad", {"pathPrefix": "no-slash", "endpoints": []})
    desired = reconcile([good, bad], "cluster.local")
    assert [r.name for r in desired.routes] == ["ns/good"]
    assert desired.status["ns/bad"][0].reason == "InvalidSpec"


def test_prefix_conflict_oldest_wins() -> None:
    """Two resources on one prefix: the older is published, the newer says who holds it."""
    old = backend(
        "old", {"pathPrefix": "/p", "endpoints": [{"url": "http://a:1"}]}, "2026-01-01T00:00:00Z"
    )
    new = backend(
        "new", {"pathPrefix": "/p", "endpoints": [{"url": "http://b:1"}]}, "2026-01-02T00:00:00Z"
    )
    desired = reconcile([new, old], "cluster.local")
    assert [r.name for r in desired.routes] == ["ns/old"]
    assert desired.status["ns/new"][0].reason == "PrefixConflict"


def test_event_on_first_status_and_on_change_only() -> None:
    """An event for a new condition; none when the condition is unchanged (drift checks)."""
    cond = Condition("Ready", "True", "Published", "serving /p on 1 endpoint(s)")
    first = event_for(cond, None)
    assert first is not None
    assert (first.type, first.reason) == ("Normal", "Published")
    previous = status_patch(cond, 1, 1, 3, None, "2026-01-01T00:00:00Z")
    assert event_for(cond, previous) is None
    worse = Condition("Ready", "False", "PrefixConflict", "pathPrefix /p is held by ns/x")
    ev = event_for(worse, previous)
    assert ev is not None
    assert (ev.type, ev.reason) == ("Warning", "PrefixConflict")
