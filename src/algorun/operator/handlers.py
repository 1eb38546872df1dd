"""kopf wiring: which watch events call which Reconciler method. Kept thin on purpose.

- PipelineDeployment events -> reconcile (coalesced); a periodic timer -> resync (drift nobody announced);
  deletion -> cleanup (kopf's finalizer holds the object until it is done).
- Events of owned objects (found by the `algo.run/owner` annotation) -> reconcile of their owner: a hand edit
  of a managed field is reverted, and a Deployment or Pod status change updates the PipelineDeployment status.
  Strimzi's kinds are watched in whichever version the cluster prefers (kopf follows it as CRDs change).
- Algo/DataConnector changes -> reconcile of every known deployment; Kafka CA/user secret changes in the Kafka
  namespace -> reconcile of the deployments that copy them.
- A Strimzi CRD added, changed or removed -> discovery is read again and every known deployment reconciled, so an
  install or upgrade of Strimzi takes effect without restarting the operator.

One active instance at a time: kopf peering (`--peering`, default name `algorun`) pauses every other instance;
without the peering CRDs installed kopf runs standalone (then run one replica).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from algorun.operator import kinds
from algorun.operator.apis import STRIMZI_GROUP
from algorun.operator.reconcile import Reconciler
from algorun.operator.render.labels import OWNER_ANNOTATION

log = logging.getLogger(__name__)

CHILD_KINDS = (
    kinds.DEPLOYMENT,
    kinds.STATEFUL_SET,
    kinds.POD,
    kinds.SERVICE,
    kinds.CONFIG_MAP,
    kinds.HPA,
    *kinds.STRIMZI_KINDS,
    kinds.MAPPING,
    kinds.HTTP_ROUTE,
    kinds.CERTIFICATE,
)


def _owner(body: Any) -> tuple[str, str] | None:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(OWNER_ANNOTATION, "")
    namespace, sep, name = value.partition("/")
    return (namespace, name) if sep and namespace and name else None


def build_registry(reconciler: Reconciler) -> kopf.OperatorRegistry:
    """A fresh registry whose handlers call `reconciler` (one per operator run, so tests can run several)."""
    registry = kopf.OperatorRegistry()
    pd = kinds.PIPELINE_DEPLOYMENT
    group, version, plural = pd.group, pd.version, pd.plural

    @kopf.on.event(group, version, plural, registry=registry)
    async def pipeline_event(type: str, body: Any, namespace: str | None, name: str, **_: Any) -> None:
        if namespace is None:
            return
        if type == "DELETED":
            reconciler.forget(namespace, name)
            return
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        reconciler.known.add((namespace, name))
        reconciler.request(namespace, name)

    @kopf.timer(group, version, plural, interval=reconciler.settings.resync_seconds, idle=None, registry=registry)
    async def resync(namespace: str | None, name: str, **_: Any) -> None:
        if namespace is not None:
            reconciler.request(namespace, name)

    @kopf.on.delete(group, version, plural, registry=registry)
    async def cleanup(body: Any, patch: Any, **_: Any) -> None:
        try:
            await reconciler.finalize(dict(body))
        except Exception as exc:
            raise kopf.TemporaryError(f"cleanup failed, retrying: {exc}", delay=5) from exc
        finalizers = list((body.get("metadata") or {}).get("finalizers") or [])
        if "finalizer.pipelineDeployment.algorun" in finalizers:
            patch.metadata["finalizers"] = [f for f in finalizers if f != "finalizer.pipelineDeployment.algorun"]

    for kind in CHILD_KINDS:
        # A Strimzi kind without a version: kopf watches the version the cluster prefers, whichever it serves.
        child_version = None if kind.group == STRIMZI_GROUP else kind.version

        @kopf.on.event(
            kind.group or "",
            child_version,
            kind.plural,
            annotations={OWNER_ANNOTATION: kopf.PRESENT},
            registry=registry,
            id=f"child-{kind.plural}",
        )
        async def child_event(body: Any, **_: Any) -> None:
            owner = _owner(body)
            if owner is not None:
                reconciler.request(*owner)

    @kopf.on.event("", "v1", "secrets", registry=registry)
    async def secret_event(namespace: str | None, name: str, body: Any, **_: Any) -> None:
        owner = _owner(body)
        if owner is not None:
            reconciler.request(*owner)
        elif namespace is not None:
            reconciler.request_for_secret(namespace, name)

    for template in (kinds.ALGO, kinds.DATA_CONNECTOR):

        @kopf.on.event(
            template.group, template.version, template.plural, registry=registry, id=f"template-{template.plural}"
        )
        async def template_event(**_: Any) -> None:
            reconciler.request_all()

    crd = kinds.CRD

    @kopf.on.event(crd.group, crd.version, crd.plural, field="spec.group", value=STRIMZI_GROUP, registry=registry)
    async def strimzi_crd_event(**_: Any) -> None:
        reconciler.apis_changed()

    @kopf.on.cleanup(registry=registry)
    async def close(**_: Any) -> None:
        await reconciler.notifier.close()

    return registry


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings that keep the operator's own writes to what it must do."""
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "algo.run/cleanup"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="algo.run")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="algo.run", key="last-handled")
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
