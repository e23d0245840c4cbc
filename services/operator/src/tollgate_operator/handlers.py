"""kopf handlers: thin. One idempotent reconcile on create/update/resume, a finalizer-backed
delete, and a timer that re-publishes (Redis restarted, table edited by hand) and refreshes the
statuses other resources affect (a prefix conflict appearing or going away).

``register(settings)`` wires them into a registry of their own at start (kubebuilder's
SetupWithManager): nothing reads the environment at import, and the timer's interval is the
setting the process started with.

Errors become kopf.TemporaryError (retried with back-off) here and only here.
"""

from __future__ import annotations

from typing import Any

import kopf
from redis.exceptions import RedisError

from tollgate_common.redis.client import create_redis
from tollgate_common.tracing import maybe_span, setup_tracing
from tollgate_operator.api import GROUP, PLURAL, VERSION, Backend, snapshot
from tollgate_operator.controller import Controller
from tollgate_operator.metrics import Metrics
from tollgate_operator.reconcile import event_for
from tollgate_operator.settings import OperatorSettings
from tollgate_operator.table import TableSink

RESOURCE = (GROUP, VERSION, PLURAL)


async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    from prometheus_client import start_http_server

    settings.persistence.finalizer = "tollgate.dev/route"
    # Events come from event_for() on each change of the Ready condition, plus kopf's own
    # warnings and errors (a handler that keeps failing) through the per-object logger.
    settings.posting.enabled = True
    settings.posting.level = 30
    mine: OperatorSettings = memo.settings
    memo.tracing = setup_tracing("tollgate-operator")
    memo.redis = create_redis(mine.redis_url)
    memo.metrics = Metrics()
    memo.controller = Controller(mine, TableSink(memo.redis), memo.metrics)
    start_http_server(mine.metrics_port, registry=memo.metrics.registry)


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.redis.aclose()
    if memo.tracing is not None:
        memo.tracing.shutdown()


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


async def reconcile(
    body: kopf.Body,
    backends: kopf.Index[str, Backend],
    memo: kopf.Memo,
    patch: kopf.Patch,
    reason: str,
    **_: Any,
) -> None:
    await _reconcile(str(reason), body, backends, memo, patch)


async def delete(
    body: kopf.Body,
    backends: kopf.Index[str, Backend],
    memo: kopf.Memo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    await _reconcile("delete", body, backends, memo, patch)


async def drift(
    body: kopf.Body,
    backends: kopf.Index[str, Backend],
    memo: kopf.Memo,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    await _reconcile("drift", body, backends, memo, patch)


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The pod's ServiceAccount in a cluster, else the kubeconfig: what kopf's default registry
    falls back to, which a registry of one's own has to say."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def register(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """The handlers in a registry of their own, the timer at the configured interval."""
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    kopf.index(*RESOURCE, registry=registry)(backends)
    # kopf's handler protocols do not model index keyword arguments (``backends``): the ignores.
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(*RESOURCE, registry=registry)(reconcile)  # type: ignore[arg-type]
    kopf.on.delete(*RESOURCE, registry=registry)(delete)  # type: ignore[arg-type]
    every = settings.drift_check_seconds
    kopf.timer(*RESOURCE, interval=every, idle=1.0, registry=registry)(drift)  # type: ignore[arg-type]
    return registry
