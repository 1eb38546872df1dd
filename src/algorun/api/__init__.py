"""algorun.api: the algo.run/v1beta1 models, their validation, naming and CRDs: the one source of truth.

Nothing else in algorun re-declares a field of the API; the operator, runner, endpoint, hooks and local mode read
pipelines through these models and `algorun.api.topology`.
"""

from algorun.api.algo import AlgoInput, AlgoOutput, AlgoSpec, AlgoVersion
from algorun.api.dataconnector import DataConnectorSpec
from algorun.api.documents import Report, SpecError, check_documents, check_files, check_text, load_pipeline
from algorun.api.pipeline import (
    ENDPOINT_NAME,
    EVENT_HOOK_NAME,
    AlgoDeployment,
    DataConnectorDeployment,
    EndpointPath,
    EndpointSpec,
    EventHookSpec,
    Pipe,
    PipelineDeploymentSpec,
    WebHook,
)
from algorun.api.problems import Problem
from algorun.api.resources import API_VERSION, Algo, DataConnector, PipelineDeployment
from algorun.api.status import PipelineDeploymentStatus
from algorun.api.topology import Catalog, Topology, build_topology

__all__ = [
    "API_VERSION",
    "ENDPOINT_NAME",
    "EVENT_HOOK_NAME",
    "Algo",
    "AlgoDeployment",
    "AlgoInput",
    "AlgoOutput",
    "AlgoSpec",
    "AlgoVersion",
    "Catalog",
    "DataConnector",
    "DataConnectorDeployment",
    "DataConnectorSpec",
    "EndpointPath",
    "EndpointSpec",
    "EventHookSpec",
    "Pipe",
    "PipelineDeployment",
    "PipelineDeploymentSpec",
    "PipelineDeploymentStatus",
    "Problem",
    "Report",
    "SpecError",
    "Topology",
    "WebHook",
    "build_topology",
    "check_documents",
    "check_files",
    "check_text",
    "load_pipeline",
]
