"""The three algo.run/v1beta1 kinds as whole Kubernetes objects, plus the notification message."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from algorun.api.algo import AlgoSpec
from algorun.api.base import ApiModel
from algorun.api.dataconnector import DataConnectorSpec
from algorun.api.enums import DeploymentStatus, LogLevel, NotifType
from algorun.api.pipeline import PipelineDeploymentSpec
from algorun.api.status import ComponentStatus, PipelineDeploymentStatus, PodStatus

GROUP = "algo.run"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"


class Resource(ApiModel):
    """Common envelope. `metadata` is Kubernetes' own; it is kept as given."""

    api_version: Literal["algo.run/v1beta1"] = "algo.run/v1beta1"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def labels(self) -> dict[str, str]:
        labels = self.metadata.get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()}


class Algo(Resource):
    """A cluster-scoped algo template, referenced from pipelines by `algoRef`."""

    kind: Literal["Algo"] = "Algo"
    spec: AlgoSpec


class DataConnector(Resource):
    """A cluster-scoped data connector template, referenced by `dataConnectorRef`."""

    kind: Literal["DataConnector"] = "DataConnector"
    spec: DataConnectorSpec


class PipelineDeployment(Resource):
    """A namespaced pipeline deployment: what the operator reconciles and `algorun run` runs."""

    kind: Literal["PipelineDeployment"] = "PipelineDeployment"
    spec: PipelineDeploymentSpec
    status: PipelineDeploymentStatus | None = None


KINDS: dict[str, type[Resource]] = {
    "Algo": Algo,
    "DataConnector": DataConnector,
    "PipelineDeployment": PipelineDeployment,
}


class DeploymentStatusMessage(ApiModel):
    """The status part of a notification: the deployment's identity, its status and what changed."""

    deployment_owner: str | None = None
    deployment_name: str | None = None
    deployment_namespace: str | None = None
    status: DeploymentStatus | None = None
    component_status: list[ComponentStatus] = Field(default_factory=list)
    pod_status: list[PodStatus] = Field(default_factory=list)


class NotifMessage(ApiModel):
    """The body the operator POSTs to `<NOTIF_URL>/<type>changed`, in the original's NotifMessage format."""

    key: str | None = None
    message_timestamp: str
    level: LogLevel = LogLevel.INFO
    title: str | None = None
    summary: str | None = None
    url: str | None = None
    type: NotifType
    deployment_status_message: DeploymentStatusMessage | None = None
