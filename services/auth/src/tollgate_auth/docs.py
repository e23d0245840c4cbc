"""The admin API's Swagger UI at /docs, served from this process: FastAPI's default page loads its
JavaScript and CSS from a CDN, which leaves /docs blank on an offline machine or a cluster without
egress. The assets come from the swagger-ui-bundle-v2 wheel (Swagger UI 5, which reads the
OpenAPI 3.1 FastAPI writes), so they are in the image with the other dependencies.

FastAPI's recipe "Self-hosting JavaScript and CSS for docs"
(docs/en/docs/how-to/custom-docs-ui-assets.md). ReDoc is off: it has no vendored build here
and would be blank offline for the same reason.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS = "/docs"
ASSETS = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs with its assets under /docs/assets (create the app with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not registered)."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
