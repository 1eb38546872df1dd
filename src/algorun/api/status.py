"""The PipelineDeployment status: the original's fields, which notifications carry too, plus Kubernetes-style
conditions.

Written by the operator through the status subresource only: the API server discards a status written to the
main resource of a kind with that subresource.
"""

from __future__ import annotations

from pydantic import Field

from algorun.api.base import ApiModel
from algorun.api.enums import ComponentType, DeploymentStatus


class ContainerStatus(ApiModel):
    """One container of a pod: the reason of its state, the kubelet's messages and, when it fails, why."""

    name: str
    status: str | None = None
    messages: list[str] = Field(default_factory=list)
    log_tail: list[str] = Field(
        default_factory=list,
        description="The last lines of the container's log (the previous instance's when it restarted); "
        "read only while it fails",
    )


class ComponentStatus(ApiModel):
    """One Deployment, StatefulSet or KafkaConnect (a data connector) of the pipeline."""

    component_type: ComponentType | None = None
    name: str | None = None
    version: str | None = None
    index: int | None = None
    deployment_name: str | None = None
    status: DeploymentStatus | None = None
    desired: int = 0
    current: int = 0
    up_to_date: int = 0
    available: int = 0
    ready: int = 0
    created_timestamp: str | None = None
    reason: str | None = Field(
        default=None,
        description="Why the component fails (CrashLoopBackOff, ImagePullBackOff, ReadinessProbeFailing, "
        "CreateContainerConfigError, ProgressDeadlineExceeded, ConnectorFailed...); absent when it does not",
    )
    message: str | None = Field(default=None, description="What fails: the pod, the container and its state")
    log_tail: list[str] = Field(default_factory=list, description="The last lines of the failing container's log")


class PodStatus(ApiModel):
    """One pod of the pipeline (ComponentPodStatus)."""

    component_type: ComponentType | None = None
    name: str | None = None
    version: str | None = None
    index: int | None = None
    pod_name: str | None = None
    status: str | None = None
    container_statuses: list[ContainerStatus] = Field(default_factory=list)
    restarts: int = 0
    ip: str | None = None
    node: str | None = None
    created_timestamp: str | None = None


class Condition(ApiModel):
    """A Kubernetes-style condition: `Ready`, `Progressing` or `Degraded`."""

    type: str
    status: str = Field(json_schema_extra={"enum": ["True", "False", "Unknown"]})
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    observed_generation: int | None = None


class PipelineDeploymentStatus(ApiModel):
    """What the operator last saw of the pipeline: overall status, each component and pod, and conditions."""

    deployment_owner: str | None = None
    deployment_name: str | None = None
    status: DeploymentStatus | None = None
    component_statuses: list[ComponentStatus] = Field(default_factory=list)
    pod_statuses: list[PodStatus] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    algo_count: int | None = Field(default=None, description="Number of algo instances (a printer column)")
