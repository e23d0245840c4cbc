"""Route documents: parsing, validation and the conflict rule."""

from __future__ import annotations

import pytest

from tollgate_common.contracts.routes import (
    ApiBackendSpec,
    Route,
    RouteDocumentError,
    RouteTable,
    parse_documents,
    resolve_conflicts,
)

DOC = """
apiVersion: tollgate.dev/v1alpha1
kind: ApiBackend
metadata: {name: eod, namespace: default}
spec:
  pathPrefix: /eod
  strategy: race
  endpoints:
    - url: http://127.0.0.1:9001
    - url: http://127.0.0.1:9002
  timeoutSeconds: 30
  successWhen: jsonStatusTrue
  cache: {ttlSeconds: 3600}
  creditCost: 1
"""


def test_parses_the_documented_example() -> None:
    """The example from the design parses with its camelCase names."""
    [route] = parse_documents(DOC)
    assert route.name == "default/eod"
    assert route.spec.path_prefix == "/eod"
    assert [e.url for e in route.spec.endpoints] == [
        "http://127.0.0.1:9001",
        "http://127.0.0.1:9002",
    ]
    assert route.spec.cache.ttl_seconds == 3600


def test_table_round_trips_through_json() -> None:
    """A table survives the trip through Redis's JSON unchanged."""
    table = RouteTable(version=7, routes=parse_documents(DOC))
    assert RouteTable.loads(table.dumps()) == table


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("strategy", "random"),
        ("pathPrefix", "eod"),
        ("pathPrefix", "/eod/"),
        ("timeoutSeconds", 0),
        ("endpoints", []),
        ("endpoints", [{"url": "ftp://x"}]),
        ("successWhen", "always"),
        ("unknownField", 1),
    ],
)
def test_rejects_invalid_specs(field: str, value: object) -> None:
    """Each constraint the gateway relies on is enforced."""
    spec = {"pathPrefix": "/eod", "endpoints": [{"url": "http://a:1"}], field: value}
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
        ApiBackendSpec.model_validate(spec)


def test_bad_document_names_itself() -> None:
    """A wrong document fails the whole file with its name in the message."""
    with pytest.raises(RouteDocumentError, match="default/eod"):
        parse_documents(DOC.replace("strategy: race", "strategy: nope"))


def test_oldest_claim_of_a_prefix_wins() -> None:
    """Two routes on one prefix: the older wins, the loser learns who holds it."""
    spec = ApiBackendSpec.model_validate({"pathPrefix": "/x", "endpoints": [{"url": "http://a:1"}]})
    old = Route(name="ns/old", spec=spec, created="2026-01-01T00:00:00Z")
    new = Route(name="ns/new", spec=spec, created="2026-02-01T00:00:00Z")
    winners, losers = resolve_conflicts([new, old])
    assert winners == [old]
    assert losers == {"ns/new": "ns/old"}


@pytest.mark.parametrize(
    ("head", "version"),
    [
        (b'{"version":1764,"routes":[', 1764),
        (RouteTable(version=3).dumps().encode()[:32], 3),
        (b'{"routes":[],"version":3}', None),  # not the published shape: parse it whole
        (b"", None),
        (b'{"version":-1,', None),
    ],
)
def test_version_of_reads_the_head_of_a_published_table(head: bytes, version: int | None) -> None:
    from tollgate_common.contracts.routes import version_of

    assert version_of(head) == version
