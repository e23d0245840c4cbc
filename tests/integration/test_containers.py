"""A slice of the black-box tests on the container provider: Redis and the demo upstream from the
locally built images (tollgate_testkit.containers), the services as host processes around them.

The tests are the ones of test_credits.py and test_auth_failures.py, collected here a second
time so that this module's ``fixture_provider`` serves them; elsewhere they run on the session's
provider (host processes by default). Skipped, with the reason, where Docker or an image is
missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tollgate_testkit.provider import Provider, containers_unavailable

from .conftest import Stack, running_stack

# Imported to be collected again under this module's provider (pytest collects every test_*
# function a module holds); `solo` is the fixture test_redis_down_fails_closed needs.
from .test_auth_failures import solo, test_redis_down_fails_closed  # noqa: F401
from .test_credits import (  # noqa: F401
    test_cache_hits_are_charged,
    test_concurrent_requests_spend_credits_exactly,
    test_credit_events_reach_the_stream,
    test_failed_upstream_refunds_the_charge,
)


@pytest.fixture(scope="module")
def fixture_provider() -> Provider:
    """Containers, whatever TOLLGATE_FIXTURES says; skipped where they cannot run."""
    reason = containers_unavailable()
    if reason is not None:
        pytest.skip(f"container provider: {reason}")
    return Provider("containers", "containers (tests/integration/test_containers.py)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fixture_provider: Provider) -> Iterator[Stack]:
    """The whole stack on containers, gateways asking auth over HTTP: the ledger mode is no
    question of the provider, and test_credits.py runs both on processes."""
    with running_stack(tmp_path_factory.mktemp("stack"), fixture_provider, "http") as s:
        yield s
