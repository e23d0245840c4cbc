"""Glue between kopf's handlers and the pure reconcile: compute, publish, produce status."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any

from tollgate_operator.api import Backend
from tollgate_operator.metrics import Metrics
from tollgate_operator.reconcile import Desired, reconcile, status_patch
from tollgate_operator.settings import OperatorSettings
from tollgate_operator.table import TableSink

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, settings: OperatorSettings, sink: TableSink, metrics: Metrics) -> None:
        self.settings = settings
        self.sink = sink
        self.metrics = metrics

    async def sync(self, backends: Iterable[Backend], trigger: str) -> Desired:
        """Publish the table all current resources describe. Idempotent."""
        desired = reconcile(backends, self.settings.cluster_domain)
        version, changed = await self.sink.publish(desired.routes)
        self.metrics.reconciles.labels(trigger).inc()
        self.metrics.table_version.set(version)
        self.metrics.routes.set(len(desired.routes))
        self.metrics.table_synced.set_to_current_time()
        if changed:
            self.metrics.publishes.inc()
            log.info(
                "route table v%d published (%d routes, %s)", version, len(desired.routes), trigger
            )
        return desired

    def status(
        self, desired: Desired, b: Backend, previous: dict[str, Any] | None
    ) -> dict[str, object]:
        cond, endpoints = desired.status[b.key]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return status_patch(cond, endpoints, b.generation, self.sink.version, previous, now)
