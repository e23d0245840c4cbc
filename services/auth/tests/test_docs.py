"""/docs works offline: the Swagger UI page and its assets come from the auth process itself."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tollgate_testkit.services import start_auth

# Every URL the page makes the browser load: src/href attributes and the spec and redirect URLs
# of the SwaggerUIBundle call.
URL = re.compile(r"""(?:src|href)=["']([^"']+)["']|(?:url|oauth2RedirectUrl): *["']([^"']+)["']""")


def page_urls(html: str) -> list[str]:
    return [a or b for a, b in URL.findall(html)]


def test_docs_load_nothing_from_elsewhere(tmp_path: Path, redis_url: str) -> None:
    """GET /docs of a real auth process names only local URLs, and each of them answers 200."""
    auth = start_auth(tmp_path, redis_url)
    try:
        page = httpx.get(f"{auth.url}/docs", timeout=10)
        assert page.status_code == 200
        urls = page_urls(page.text)
        assert any(u.endswith(".js") for u in urls)
        assert any(u.endswith(".css") for u in urls)
        assert [u for u in urls if not u.startswith("/")] == []
        assert {u: httpx.get(f"{auth.url}{u}", timeout=10).status_code for u in urls} == {
            u: 200 for u in urls
        }
    finally:
        auth.stop()
