"""The object kinds the operator manages, as lightkube generic resources (plain dicts, no client-side model).

Working on dicts keeps what is applied exactly what `render` produced (a typed model would drop or default
fields), and lets one code path handle built-in kinds and CRDs alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from lightkube.generic_resource import GenericNamespacedResource, create_api_info

from algorun.operator.apis import STRIMZI_GROUP, STRIMZI_VERSIONS


@dataclass(frozen=True)
class Kind:
    """One kind the operator reads or writes: enough to build its API paths, whether built in or a CRD."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def crd(self) -> str | None:
        """The CRD that must be installed for this kind (None for built-in kinds)."""
        return f"{self.plural}.{self.group}" if "." in self.group else None


SECRET = Kind("v1", "Secret", "secrets")
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SERVICE = Kind("v1", "Service", "services")
POD = Kind("v1", "Pod", "pods")
EVENT = Kind("v1", "Event", "events")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
STATEFUL_SET = Kind("apps/v1", "StatefulSet", "statefulsets")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
KAFKA_TOPIC = Kind(f"{STRIMZI_GROUP}/v1", "KafkaTopic", "kafkatopics")
KAFKA_USER = Kind(f"{STRIMZI_GROUP}/v1", "KafkaUser", "kafkausers")
KAFKA_CONNECT = Kind(f"{STRIMZI_GROUP}/v1", "KafkaConnect", "kafkaconnects")
KAFKA_CONNECTOR = Kind(f"{STRIMZI_GROUP}/v1", "KafkaConnector", "kafkaconnectors")
STRIMZI_KINDS = (KAFKA_TOPIC, KAFKA_USER, KAFKA_CONNECT, KAFKA_CONNECTOR)
MAPPING = Kind("getambassador.io/v3alpha1", "Mapping", "mappings")
HTTP_ROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
CERTIFICATE = Kind("cert-manager.io/v1", "Certificate", "certificates")
PIPELINE_DEPLOYMENT = Kind("algo.run/v1beta1", "PipelineDeployment", "pipelinedeployments")
ALGO = Kind("algo.run/v1beta1", "Algo", "algos", namespaced=False)
DATA_CONNECTOR = Kind("algo.run/v1beta1", "DataConnector", "dataconnectors", namespaced=False)

CRD = Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False)


def strimzi(kind: Kind, version: str) -> Kind:
    """A Strimzi kind in API version `version` of its group (`strimzi(KAFKA_TOPIC, "v1beta2")`)."""
    return replace(kind, api_version=f"{STRIMZI_GROUP}/{version}")


def managed(strimzi_version: str | None = STRIMZI_VERSIONS[0]) -> tuple[Kind, ...]:
    """Every kind `render` can produce, the Strimzi ones in `strimzi_version` (left out when None: not served);
    pruning lists each of them."""
    versioned = () if strimzi_version is None else tuple(strimzi(k, strimzi_version) for k in STRIMZI_KINDS)
    return (SECRET, CONFIG_MAP, SERVICE, DEPLOYMENT, STATEFUL_SET, HPA, MAPPING, HTTP_ROUTE, CERTIFICATE, *versioned)


MANAGED: tuple[Kind, ...] = managed()
"""The managed kinds with Strimzi's current API version."""

KAFKA_NAMESPACE_KINDS = ("KafkaTopic", "KafkaUser")
"""The kinds (by name, in any API version) that live in the Kafka cluster's namespace."""

_BY_KEY = {
    (k.api_version, k.kind): k
    for k in (
        *MANAGED,
        *(strimzi(k, v) for k in STRIMZI_KINDS for v in STRIMZI_VERSIONS),
        POD,
        EVENT,
        PIPELINE_DEPLOYMENT,
        ALGO,
        DATA_CONNECTOR,
        CRD,
    )
}


def of(obj: dict[str, Any]) -> Kind:
    return _BY_KEY[(obj["apiVersion"], obj["kind"])]


@cache
def resource(kind: Kind) -> Any:
    """A lightkube resource class for `kind` (not registered globally, so it never clashes with lightkube's
    typed models of the same kinds)."""
    from lightkube.generic_resource import GenericGlobalResource, _create_subresource

    base: Any = GenericNamespacedResource if kind.namespaced else GenericGlobalResource
    api_info = create_api_info(kind.group, kind.version, kind.kind, kind.plural)
    from lightkube.generic_resource import GenericGlobalStatus, GenericNamespacedStatus

    status_base: Any = GenericNamespacedStatus if kind.namespaced else GenericGlobalStatus
    cls = type(
        kind.kind,
        (base,),
        {"_api_info": api_info, "Status": _create_subresource(status_base, api_info, action="status")},
    )
    return cls
