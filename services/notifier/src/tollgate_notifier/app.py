"""The notifier process: the alert consumer, the usage exporter (when configured) and the expiry
sweeper (key.expiring, unless its window is 0), plus /healthz, /readyz and /metrics on FastAPI.

The consumer runs inside the app's lifespan, so uvicorn's SIGTERM handling drives a graceful stop:
reading stops, the batch in hand finishes, and what is left pending goes to another replica.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tollgate_common.logging import configure_logging
from tollgate_common.redis.client import create_redis
from tollgate_common.tracing import setup_tracing
from tollgate_notifier.consumer import Consumer
from tollgate_notifier.expiries import ExpirySweeper
from tollgate_notifier.export import Exporter, UsageClient
from tollgate_notifier.metrics import Metrics
from tollgate_notifier.settings import NotifierSettings
from tollgate_notifier.sinks import build_sinks


def create_app(settings: NotifierSettings) -> FastAPI:
    metrics = Metrics()
    state: dict[str, Consumer | Exporter] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        redis = create_redis(settings.redis_url)
        sinks = build_sinks(settings, redis)
        tracing = setup_tracing("tollgate-notifier")
        consumer = Consumer(redis, settings, sinks, metrics, tracing=tracing)
        await consumer.start()
        state["consumer"] = consumer
        exporter: Exporter | None = None
        if settings.usage_export_url:
            exporter = Exporter(redis, settings, metrics, UsageClient(settings, redis))
            await exporter.start()
            state["exporter"] = exporter
        sweeper: ExpirySweeper | None = None
        if settings.key_expiring_before_seconds > 0:
            sweeper = ExpirySweeper(redis, settings)
            await sweeper.start()
        try:
            yield
        finally:
            if sweeper is not None:
                await sweeper.stop()
            if exporter is not None:
                await exporter.stop()
                await exporter.client.aclose()
            await consumer.stop()
            for sink in sinks.values():
                await sink.aclose()
            await redis.aclose()
            if tracing is not None:
                tracing.shutdown()

    # No Swagger UI: FastAPI's page loads it from a CDN and is blank offline (issue 15).
    app = FastAPI(title="Tollgate notifier", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"status": True}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        # ready: the alert consumer's (and, when exporting, the exporter's) last Redis step worked
        wanted = ["consumer", "exporter"] if settings.usage_export_url else ["consumer"]
        ok = all(name in state and state[name].healthy for name in wanted)
        return JSONResponse({"status": ok}, 200 if ok else 503)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def main_app() -> FastAPI:
    settings = NotifierSettings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
