"""Kubernetes Events on the PipelineDeployment: what the operator did, and what went wrong.

Events are only posted when something happened (objects applied or pruned, a problem appearing or changing),
never on a no-op resync, so `kubectl describe` reads as a history rather than a heartbeat.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from algorun.operator import kinds
from algorun.operator.apply import Cluster

log = logging.getLogger(__name__)

COMPONENT = "algorun-operator"


def event_body(pd: dict[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
    meta = pd["metadata"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": "algo.run/v1beta1",
            "kind": "PipelineDeployment",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def post(cluster: Cluster, pd: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event; a failure is logged, never raised (an event is worth less than the reconcile)."""
    try:
        await cluster.create(kinds.EVENT, event_body(pd, type_, reason, message))
    except Exception as exc:  # the API server may refuse events (RBAC, quota); the reconcile goes on
        log.warning("could not post event %s on %s: %s", reason, pd["metadata"].get("name"), exc)
