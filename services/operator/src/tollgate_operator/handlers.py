"""kopf handlers: thin. One idempotent reconcile on create/update/resume, a finalizer-backed
delete, and a timer that re-publishes (Redis restarted, table edited by hand) and refreshes the
statuses other resources affect (a prefix conflict appearing or going away).

Errors become kopf.TemporaryError (retried with back-off) here and only here.
"""

from __future__ import annotations

from typing import Any

import kopf
from redis.exceptions import RedisError

from tollgate_common.redis import create_redis
from tollgate_common.settings import load_settings
from tollgate_common.tracing import maybe_span, setup_tracing
from tollgate_operator.api import GROUP, PLURAL, VERSION, Backend, snapshot
from tollgate_operator.controller import Controller
from tollgate_operator.metrics import Metrics
from tollgate_operator.reconcile import event_for
from tollgate_operator.settings import OperatorSettings
from tollgate_operator.table import TableSink

SETTINGS = load_settings(OperatorSettings, "tollgate-operator")
RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.on.startup()
async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    from prometheus_client import start_http_server

    settings.persistence.finalizer = "tollgate.dev/route"
    # Events come from event_for() on each change of the Ready condition, plus kopf's own
    # warnings and errors (a handler that keeps failing) through the per-object logger.
    settings.posting.enabled = True
    settings.posting.level = 30
    memo.tracing = setup_tracing("tollgate-operator")
    memo.redis = create_redis(SETTINGS.redis_url)
    memo.metrics = Metrics()
    memo.controller = Controller(SETTINGS, TableSink(memo.redis), memo.metrics)
    start_http_server(SETTINGS.metrics_port, registry=memo.metrics.registry)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.redis.aclose()
    if memo.tracing is not None:
        memo.tracing.shutdown()


@kopf.index(*RESOURCE)
def backends(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[str, Backend]:
    return {f"{namespace}/{name}": snapshot(body)}


async def _reconcile(
    trigger: str,
    body: kopf.Body,
    backends: kopf.Index[str, Backend],
    memo: kopf.Memo,
    patch: kopf.Patch,
) -> None:
    meta = body.get("metadata") or {}
    attributes = {
        "tollgate.trigger": trigger,
        "k8s.namespace.name": str(meta.get("namespace", "")),
        "tollgate.backend": str(meta.get("name", "")),
    }
    with maybe_span(memo.tracing, "reconcile", attributes):
        await _sync(trigger, body, backends, memo, patch)


async def _sync(
    trigger: str,
    body: kopf.Body,
    backends: kopf.Index[str, Backend],
    memo: kopf.Memo,
    patch: kopf.Patch,
) -> None:
    me = snapshot(body)
    others = [b for store in backends.values() for b in store if b.key != me.key]
    try:
        desired = await memo.controller.sync([*others, me], trigger)
    except RedisError as exc:
        memo.metrics.errors.inc()
        raise kopf.TemporaryError(f"redis unavailable: {exc}", delay=5) from exc
    if me.deleting:
        return
    previous = dict(body.get("status") or {})
    new = memo.controller.status(desired, me, previous)
    if new != previous:
        patch.status.update(new)
    event = event_for(desired.status[me.key][0], previous)
    if event is not None:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


# kopf's handler protocols do not model index keyword arguments (``backends``), hence the ignores.
@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)  # type: ignore[arg-type]
async def reconcile(
    body: kopf.Body,
    backends: kopf.Index[str, Backend],
    memo: kopf.Memo,
    patch: kopf.Patch,
    reason: str,
    **_: Any,
) -> None:
    await _reconcile(str(reason), body, backends, memo, patch)


@kopf.on.delete(*RESOURCE)  # type: ignore[arg-type]
async def delete(
    body: kopf.Body,
    backends: kopf.Index[str, Backend],
    memo: kopf.Memo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    await _reconcile("delete", body, backends, memo, patch)


@kopf.timer(*RESOURCE, interval=SETTINGS.drift_check_seconds, idle=1.0)  # type: ignore[arg-type]
async def drift(
    body: kopf.Body,
    backends: kopf.Index[str, Backend],
    memo: kopf.Memo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    await _reconcile("drift", body, backends, memo, patch)
