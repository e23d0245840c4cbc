"""Owner webhooks as real processes (issue 13): a key's owner webhook, set through auth's admin
API, hears credits.low and credits.exhausted from the real gateway, auth and notifier, and one
key.expiring from two notifiers; a real receiver verifies each signature; the secret shows in no
answer, log or metric."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tollgate_testkit.receivers import WebhookReceiver, wait_for
from tollgate_testkit.services import ADMIN_TOKEN, start_auth, start_gateway, start_notifier
from tollgate_testkit.upstreams import Upstream

from .conftest import PEPPER, routes_yaml

SECRET = "whsec-integration-0123456789"


@pytest.mark.parametrize("mode", ["http", "redis"])
def test_the_owner_hears_low_and_exhausted_signed(
    tmp_path: Path, redis_url: str, mode: str
) -> None:
    """12 credits, low threshold 10, 12 requests: one credits.low (at 9 left) and one
    credits.exhausted, each verified; the first post fails and is retried."""
    receiver = WebhookReceiver(secret=SECRET)
    receiver.fail_next = 1
    up = Upstream("up", tmp_path)
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_yaml(up.url))
    auth = start_auth(tmp_path, redis_url, KEY_PEPPER=PEPPER)
    gw = start_gateway(
        tmp_path,
        redis_url,
        ROUTES_FILE=str(routes),
        AUTH_URL=auth.url,
        AUTH_MODE=mode,
        KEY_PEPPER=PEPPER,
    )
    notifier = start_notifier(tmp_path, redis_url, "o1")
    try:
        admin = httpx.Client(base_url=auth.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        created = admin.post("/v1/admin/keys", json={"credits": 12}).json()
        key_id, key = created["id"], created["key"]
        r = admin.patch(
            f"/v1/admin/keys/{key_id}",
            json={"webhook_url": receiver.url, "webhook_secret": SECRET},
        )
        assert r.status_code == 200, r.text
        for _ in range(12):
            r = httpx.get(f"{gw.url}/api/v1/live/X", params={"api_key": key}, timeout=10)
            assert r.status_code == 200
        wait_for(lambda: len(receiver.posts) >= 2, timeout=30)
        assert sorted(p["type"] for p in receiver.posts) == ["credits.exhausted", "credits.low"]
        assert {p["data"]["key_id"] for p in receiver.posts} == {key_id}
        assert receiver.rejected == 0
        shown = admin.get("/v1/admin/keys").text + admin.get(f"/v1/admin/keys/{key_id}").text
        shown += httpx.get(f"{notifier.url}/metrics").text + httpx.get(f"{auth.url}/metrics").text
        shown += notifier.proc.output() + auth.proc.output() + gw.proc.output()
        assert SECRET not in shown
        admin.close()
    finally:
        notifier.stop()
        gw.stop()
        auth.stop()
        up.stop()
        receiver.stop()


def test_a_key_expiring_in_the_window_is_warned_once_by_two_notifiers(
    tmp_path: Path, redis_url: str
) -> None:
    """Real auth and two notifiers (window 1 h): the key expiring in 30 min, its webhook set
    through the admin API, gets exactly one signed key.expiring; the key expiring in 2 h (same
    webhook) and the revoked one get none."""
    receiver = WebhookReceiver(secret=SECRET)
    auth = start_auth(tmp_path, redis_url, KEY_PEPPER=PEPPER)
    timings = {"KEY_EXPIRING_BEFORE_SECONDS": "3600", "EXPIRY_SWEEP_INTERVAL_SECONDS": "0.2"}
    notifiers = [start_notifier(tmp_path, redis_url, name, **timings) for name in ("e1", "e2")]
    try:
        admin = httpx.Client(base_url=auth.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        now = time.time()
        hook = {"webhook_url": receiver.url, "webhook_secret": SECRET}
        ids = {}
        for name in ("revoked", "soon", "later"):
            ids[name] = admin.post("/v1/admin/keys", json={"name": name}).json()["id"]
            assert admin.patch(f"/v1/admin/keys/{ids[name]}", json=hook).status_code == 200
        # revoked first, then given an expiry inside the window: a revoked key is not warned
        assert admin.post(f"/v1/admin/keys/{ids['revoked']}/revoke").status_code == 200
        for name, at in (("revoked", now + 1800), ("soon", now + 1800), ("later", now + 7200)):
            r = admin.patch(f"/v1/admin/keys/{ids[name]}", json={"expires_at": at})
            assert r.status_code == 200, r.text
        wait_for(lambda: len(receiver.posts) >= 1, timeout=30)
        # both notifiers sweep every 0.2 s: a few seconds is many sweeps each, room for a
        # duplicate or a wrong warning to show up, if there were one
        time.sleep(3)
        assert [(p["type"], p["data"]["key_id"]) for p in receiver.posts] == [
            ("key.expiring", ids["soon"])
        ]
        assert receiver.posts[0]["data"]["expires_at"] == int(now + 1800)
        assert receiver.rejected == 0
        admin.close()
    finally:
        for n in notifiers:
            n.stop()
        auth.stop()
        receiver.stop()
