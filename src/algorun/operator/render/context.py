"""What one render works from: the resolved pipeline, the settings and the few facts read from the cluster.

`ClusterFacts` is the only input that is not in the spec or the settings. The operator fills it from the API
server before rendering; `algorun render` (offline) leaves it empty, and then the secret copies, whose data
lives in the cluster, are left out of the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from algorun.api.resources import PipelineDeployment
from algorun.api.topology import Topology
from algorun.operator.apis import STRIMZI_VERSIONS
from algorun.operator.render.labels import Identity
from algorun.operator.settings import OperatorOptions


@dataclass(frozen=True)
class ClusterFacts:
    """Cluster state that rendering depends on."""

    ca_secret_data: dict[str, str] | None = None
    """`data` of the Kafka cluster CA secret in the Kafka namespace (None: unknown or absent)."""
    user_secret_data: dict[str, str] | None = None
    """`data` of the Kafka user secret in the Kafka namespace (None: unknown or not created yet)."""
    storage_secret: str | None = None
    """Name of the storage secret found in the deployment namespace (None: storage off or no secret)."""
    offline: bool = False
    """Rendering without a cluster (`algorun render`): facts are unknown, not absent."""
    strimzi_version: str = STRIMZI_VERSIONS[0]
    """The `kafka.strimzi.io` API version the Strimzi objects are written in (what the cluster serves)."""


@dataclass
class RenderContext:
    """Everything one render reads, in one place (the pipeline, its topology, the settings, the cluster facts),
    so a render is a pure function of it."""

    pipeline: PipelineDeployment
    topology: Topology
    settings: OperatorOptions
    facts: ClusterFacts
    ident: Identity
    notes: list[str] = field(default_factory=list)
    """Things the user should know (e.g. a secret not there yet); they become status messages."""

    @property
    def ns(self) -> str:
        return self.ident.deployment_namespace

    @property
    def owner(self) -> str:
        return self.ident.deployment_owner

    @property
    def name(self) -> str:
        return self.ident.deployment_name


def identity_of(pipeline: PipelineDeployment, default_namespace: str = "default") -> Identity:
    meta: dict[str, Any] = pipeline.metadata
    namespace = str(meta.get("namespace") or default_namespace)
    spec = pipeline.spec
    return Identity(
        namespace=namespace,
        name=str(meta.get("name") or spec.deployment_name),
        uid=str(meta["uid"]) if meta.get("uid") else None,
        deployment_owner=spec.deployment_owner,
        deployment_name=spec.deployment_name,
        pipeline_owner=spec.effective_pipeline_owner,
        pipeline_name=spec.effective_pipeline_name,
        deployment_namespace=spec.deployment_namespace or namespace,
    )
