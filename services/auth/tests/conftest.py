"""The real auth admin app (FastAPI, its lifespan with real pools) against a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from tollgate_auth.app import Service, create_admin
from tollgate_auth.settings import AuthSettings

TOKEN = "admin-token-for-tests-0123"


@asynccontextmanager
async def running_admin(redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Service]]:
    """The admin app with its lifespan entered; a client that sends the admin token."""
    svc = Service(AuthSettings(admin_token=TOKEN, redis_url=redis_url))
    app: FastAPI = create_admin(svc)
    # raise_app_exceptions=False: an unhandled error shows as the 500 a client would get.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        svc.lifespan(app),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://auth",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        yield client, svc


@pytest.fixture
async def admin_app(redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Service]]:
    """The running admin app on a freshly emptied redis-server, and its service."""
    async with running_admin(redis_url) as running:
        yield running


@pytest.fixture
def admin(admin_app: tuple[httpx.AsyncClient, Service]) -> httpx.AsyncClient:
    """A client of the real admin app (sends the admin token)."""
    return admin_app[0]


@pytest.fixture
def service(admin_app: tuple[httpx.AsyncClient, Service]) -> Service:
    """The service behind ``admin`` (its store runs the real authorize script)."""
    return admin_app[1]
