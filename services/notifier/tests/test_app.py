"""The notifier's HTTP app: health, metrics, and no page that needs the internet."""

from __future__ import annotations

import httpx

from tollgate_notifier.app import create_app
from tollgate_notifier.settings import NotifierSettings


async def test_no_docs_page_loads_from_a_cdn() -> None:
    """/docs and /redoc (FastAPI's CDN pages, blank offline) are not served; /healthz is."""
    app = create_app(NotifierSettings(redis_url="redis://127.0.0.1:6379/0"))
    transport = httpx.ASGITransport(app=app)  # no lifespan: nothing connects to Redis
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
        assert (await client.get("/healthz")).status_code == 200
        for path in ("/docs", "/redoc"):
            r = await client.get(path)
            assert r.status_code == 404
            assert "swagger" not in r.text.lower()
            assert "redoc" not in r.text.lower()
