"""Labels, annotations, names and owner references shared by every rendered object.

The label keys and values are the original operator's (dashboards, ServiceMonitors and users' selectors rely on
them). Two annotations are ours: `algo.run/owner` (namespace/name of the PipelineDeployment, so pruning never
touches another deployment's objects even when two share `owner.name`) and `algo.run/applied-hash` (a digest of
the desired object, so an unchanged object is recognised without writing to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from algorun.api.naming import object_name

PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
PIPELINE_DEPLOYMENT = "algo.run/pipeline-deployment"
PIPELINE = "algo.run/pipeline"
ALGO = "algo.run/algo"
ALGO_VERSION = "algo.run/algo-version"
INDEX = "algo.run/index"
CREATE_ALGO_SERVICE = "algo.run/create-algo-service"
DATACONNECTOR = "algo.run/dataconnector"
DATACONNECTOR_VERSION = "algo.run/dataconnector-version"
MAPPING_PROTOCOL = "algo.run/mapping-protocol"
STRIMZI_CLUSTER = "strimzi.io/cluster"

OWNER_ANNOTATION = "algo.run/owner"
HASH_ANNOTATION = "algo.run/applied-hash"
CONFIG_HASH_ANNOTATION = "algo.run/config-hash"

PART_OF_VALUE = "algo.run"
MANAGED_BY_VALUE = "pipeline-operator"


@dataclass(frozen=True)
class Identity:
    """The PipelineDeployment being rendered: where it lives and who it is."""

    namespace: str
    """Namespace of the PipelineDeployment object."""
    name: str
    """metadata.name of the PipelineDeployment."""
    uid: str | None
    """metadata.uid; None when rendering offline (no owner references then)."""
    deployment_owner: str
    deployment_name: str
    pipeline_owner: str
    pipeline_name: str
    deployment_namespace: str
    """Where the workloads go (spec.deploymentNamespace, default the object's namespace)."""

    @property
    def deployment_label(self) -> str:
        return f"{self.deployment_owner}.{self.deployment_name}"

    @property
    def owner_key(self) -> str:
        return f"{self.namespace}/{self.name}"


def common_labels(ident: Identity, component: str) -> dict[str, str]:
    return {
        PART_OF: PART_OF_VALUE,
        MANAGED_BY: MANAGED_BY_VALUE,
        COMPONENT: component,
        PIPELINE_DEPLOYMENT: ident.deployment_label,
        PIPELINE: f"{ident.pipeline_owner}.{ident.pipeline_name}",
    }


def owned_selector(ident: Identity) -> dict[str, str]:
    """The labels every object of one deployment carries (what pruning lists by)."""
    return {MANAGED_BY: MANAGED_BY_VALUE, PIPELINE_DEPLOYMENT: ident.deployment_label}


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def suffixed(suffix: str, *parts: str | int) -> str:
    """A deterministic object name ending in `-suffix` (the suffix survives shortening)."""
    return f"{object_name(*parts, max_length=62 - len(suffix))}-{suffix}"


def metadata(
    ident: Identity,
    name: str,
    namespace: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Object metadata: the owner annotation always, an owner reference only when GC is safe.

    Kubernetes garbage collection treats an owner in another namespace as absent and deletes the child, so a
    cross-namespace object (KafkaTopic/KafkaUser in the Kafka namespace, workloads in a deploymentNamespace
    other than the PipelineDeployment's) gets no owner reference; the operator's finalizer removes it instead.
    """
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels),
        "annotations": {OWNER_ANNOTATION: ident.owner_key, **(annotations or {})},
    }
    if ident.uid and namespace == ident.namespace:
        meta["ownerReferences"] = [
            {
                "apiVersion": "algo.run/v1beta1",
                "kind": "PipelineDeployment",
                "name": ident.name,
                "uid": ident.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta
