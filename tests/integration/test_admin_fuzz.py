"""A bounded property-based fuzz of the auth admin API from its own OpenAPI document
(schemathesis), against a real auth process and a real redis-server: whatever it is sent, the API
answers without a 5xx and without a traceback in the body.

Bounded and deterministic for CI: a fixed number of examples per operation, derandomized (the
same cases every run, no example database), well under a minute in all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.services import ADMIN_TOKEN, Service, start_auth

EXAMPLES = 15  # per operation and kind (valid, invalid; random or existing ids): 10-40 s in all


@pytest.fixture(scope="module")
def admin_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work: Path = tmp_path_factory.mktemp("fuzz")
    redis = RedisServer(work / "redis")
    auth = start_auth(work, redis.url)
    yield auth
    auth.stop()
    redis.stop()


def test_admin_api_answers_every_input_without_a_5xx(admin_api: Service) -> None:
    """Generated requests to every operation of the OpenAPI document, valid ones and invalid ones
    (schemathesis' positive and negative modes), with the admin token: none gets a 5xx or a
    traceback. All failures are collected, one line each, before the test fails."""
    schema = schemathesis.openapi.from_url(f"{admin_api.url}/openapi.json")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # the document was read: keys, plans, credits, probes

    # Paths are also fuzzed with a key and a plan that exist: random ids alone only reach 404s.
    created = httpx.post(
        f"{admin_api.url}/v1/admin/keys", json={"credits": 100}, headers=auth, timeout=10
    )
    created.raise_for_status()
    plan = {"name": "fuzz", "rate": 1.0, "burst": 5}
    httpx.put(f"{admin_api.url}/v1/admin/plans/fuzz", json=plan, headers=auth, timeout=10)
    known = {"key_id": created.json()["id"], "name": "fuzz"}

    def run(cases: st.SearchStrategy[Any]) -> None:
        @given(cases)
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: each failure is reported
        )
        def fuzz(case: Any) -> None:
            r = case.call(base_url=admin_api.url, headers=auth, timeout=10)
            if r.status_code >= 500 or "Traceback" in r.text:
                failures.append(f"{case.method} {case.formatted_path}: {r.status_code} {r.text}")

        # Unsatisfiable: the negative mode of an operation with no input to break (/healthz).
        with contextlib.suppress(Unsatisfiable):
            fuzz()

    for op in operations:
        pinned = {k: v for k, v in known.items() if "{" + k + "}" in op.path}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run(op.as_strategy(mode))
            if pinned:
                run(op.as_strategy(mode, path_parameters=pinned))
    assert not failures, "\n".join(dict.fromkeys(failures))
