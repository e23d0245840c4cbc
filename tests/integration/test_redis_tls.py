"""The stack over rediss:// with an ACL user: a real TLS-only redis-server whose CA the services
trust through SSL_CERT_FILE; a wrong password and a bad URL are clear errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tollgate_testkit.fixtures import Upstream
from tollgate_testkit.redis_server import RedisServer
from tollgate_testkit.services import ADMIN_TOKEN, Service, start_auth, start_gateway

from .conftest import PEPPER, routes_yaml


def trusting(server: RedisServer) -> dict[str, str]:
    assert server.tls is not None
    return {"SSL_CERT_FILE": str(server.tls.ca)}


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    up = Upstream("up", tmp_path)
    yield up
    up.stop()


@pytest.mark.parametrize("mode", ["http", "redis"])
def test_the_stack_runs_over_tls_with_an_acl_user(
    tmp_path: Path, tls_redis: RedisServer, upstream: Upstream, mode: str
) -> None:
    """Auth and a gateway (AUTH_MODE http and redis) on rediss://: keys, charges, the cache."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(upstream.url))
    env = trusting(tls_redis)
    started: list[Service] = []
    try:
        auth = start_auth(tmp_path, tls_redis.url, process_env=env, KEY_PEPPER=PEPPER)
        started.append(auth)
        gw = start_gateway(
            tmp_path,
            tls_redis.url,
            process_env=env,
            ROUTES_FILE=str(routes),
            AUTH_URL=auth.url,
            AUTH_MODE=mode,
            KEY_PEPPER=PEPPER,
        )
        started.append(gw)
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        r = httpx.post(f"{auth.url}/v1/admin/keys", json={"credits": 5}, headers=admin)
        r.raise_for_status()
        key_id, key = r.json()["id"], r.json()["key"]
        first = httpx.get(f"{gw.url}/api/v1/eod/TLS{mode}", params={"api_key": key})
        again = httpx.get(f"{gw.url}/api/v1/eod/TLS{mode}", params={"api_key": key})
        live = httpx.get(f"{gw.url}/api/v1/live/TLS", params={"api_key": key})
        assert [first.status_code, again.status_code, live.status_code] == [200, 200, 200]
        assert again.headers["x-cache"] == "HIT"
        left = httpx.get(f"{auth.url}/v1/admin/keys/{key_id}", headers=admin).json()["credits"]
        assert left == 2
        ready = httpx.get(f"{gw.url}/readyz").json()
        assert ready["lean"] is True
        assert ready["pool"] is True
    finally:
        for s in reversed(started):
            s.stop()


def test_a_wrong_password_is_a_clear_error(
    tmp_path: Path, tls_redis: RedisServer, upstream: Upstream
) -> None:
    """A gateway with a wrong Redis password: 503 JSON on paid routes, and its log says that
    Redis refused the user, without the password."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(upstream.url))
    url = tls_redis.url.replace(":s3cret-pw@", ":wrong-pw-123@")
    gw = start_gateway(
        tmp_path,
        url,
        process_env=trusting(tls_redis),
        ROUTES_FILE=str(routes),
        AUTH_MODE="redis",
        AUTH_URL="http://127.0.0.1:1",
        KEY_PEPPER=PEPPER,
    )
    try:
        r = httpx.get(f"{gw.url}/api/v1/live/X", params={"api_key": "tg_aaaaaaaa_" + "x" * 43})
        assert r.status_code == 503
        assert r.json()["status"] is False
        assert httpx.get(f"{gw.url}/readyz").json()["lean"] is False
    finally:
        gw.stop()
    log = gw.proc.output()
    assert "AUTH as user 'tollgate' refused: WRONGPASS" in log
    assert "wrong-pw-123" not in log


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_an_unsupported_url_stops_the_service_at_start(service: str) -> None:
    """A Redis URL option the clients do not take: exit 1 with the setting named, no password."""
    env = {
        "PATH": "/usr/bin:/bin",
        f"TOLLGATE_{service.upper()}_REDIS_URL": "rediss://u:s3cret@redis/0?ssl_cert_reqs=none",
    }
    done = subprocess.run(
        [sys.executable, "-m", f"tollgate_{service}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"tollgate-{service}: invalid settings: TOLLGATE_{service.upper()}_REDIS_URL: "
        "unsupported option(s) ssl_cert_reqs: the URL takes no options"
    )
