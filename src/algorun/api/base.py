"""The base model every algo.run/v1beta1 type derives from, and the small value types they share.

JSON names are camelCase (the YAML users write), Python names snake_case. Unknown fields are errors: a typo in a
pipeline YAML must be reported, not silently dropped (the API server would prune it without a word).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from algorun.api.enums import ImagePullPolicy, MetricSourceType, MetricTargetType, RetryStrategyKind
from algorun.api.units import parse_duration, parse_quantity


class ApiModel(BaseModel):
    """Base of every API type: camelCase aliases, unknown fields forbidden."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_assignment=False
    )

    def to_json(self) -> dict[str, Any]:
        """The wire form: JSON names, enums as strings, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _stringify(value: Any) -> Any:
    """YAML turns `value: 1` into an int and `value: yes` into a bool; the API types these as strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_duration(value: Any) -> Any:
    value = _stringify(value)
    if isinstance(value, str):
        parse_duration(value)
    return value


def _check_quantity(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a quantity must be a number or a string such as 500m or 1Gi")
    if isinstance(value, int | float | str):
        parse_quantity(value)
        return str(value)
    return value


Str = Annotated[str, BeforeValidator(_stringify)]
"""A string that also accepts YAML scalars (numbers, booleans) and keeps their text."""

Duration = Annotated[str, BeforeValidator(_check_duration)]
"""A Go-style duration string such as `30s`, `5m` or `1h30m` (checked on load)."""

Quantity = Annotated[
    str,
    BeforeValidator(_check_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
]
"""A Kubernetes resource quantity (`500m`, `2`, `1.5Gi`), checked on load."""


def _int_or_string(value: Any) -> Any:
    """Accept Kubernetes' int-or-string as well as the original's `{int32Value, stringValue, isInt32}` object."""
    if isinstance(value, dict):
        if value.get("isString") or ("stringValue" in value and not value.get("isInt32")):
            return value.get("stringValue")
        return value.get("int32Value")
    return value


IntOrString = Annotated[
    int | str,
    BeforeValidator(_int_or_string),
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True}),
]
"""A port given as a number, a named port, or an Int32OrStringV1 object (`_int_or_string`)."""


class ContainerImage(ApiModel):
    """A container image (ContainerImageModel)."""

    repository: str | None = None
    tag: Str | None = None
    image_pull_policy: ImagePullPolicy | None = None

    def reference(self, default_tag: str = "latest") -> str:
        """`repository:tag`, with `default_tag` when the tag is empty (`repo:` is not a valid reference)."""
        return f"{self.repository}:{self.tag or default_tag}"


class Param(ApiModel):
    """A named parameter (AlgoParamSpec)."""

    name: str
    value: Str | None = None
    sort_order: int | None = None
    required: bool | None = None


class CustomResourceRef(ApiModel):
    """A reference to a cluster-scoped Algo or DataConnector, by name and/or labels."""

    name: str | None = None
    match_labels: dict[str, Str] | None = None


class RetryStep(ApiModel):
    """One step of a retry strategy: wait `backoffDuration`, then try again, `repeat` times."""

    index: int | None = None
    backoff_duration: Duration = Field(description="Go-style duration before the retry, e.g. 30s, 5m, 1h30m")
    repeat: int = Field(default=1, ge=0, description="How many attempts this step makes (0 counts as 1)")


class RetryStrategy(ApiModel):
    """How failed messages are retried (TopicRetryStrategyModel)."""

    strategy: RetryStrategyKind
    dead_letter_suffix: Str | None = None
    steps: list[RetryStep] = Field(default_factory=list)


class TopicParam(ApiModel):
    """One topic-level Kafka setting (`retention.ms`...), written into the topic's config as given."""

    name: str
    value: Str | None = None


class TopicConfig(ApiModel):
    """A topic that carries one output (TopicConfigModel).

    `topicName` is a template: `{deploymentowner}` and `{deploymentname}` are substituted and the whole name is
    lower-cased. When it is empty, the documented default name is used (see `algorun.api.naming`).
    """

    output_name: str | None = None
    topic_name: str | None = None
    auto_name: bool | None = None
    auto_partition: bool | None = None
    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    topic_params: list[TopicParam] | None = None
    override_retry_strategy: bool | None = None
    retry_strategy: RetryStrategy | None = None


class ResourceRequirements(ApiModel):
    """Container resource limits and requests (any resource name: cpu, memory, nvidia.com/gpu, ...)."""

    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None


class ScaleMetric(ApiModel):
    """One HPA metric (ScaleMetricModel)."""

    source_type: MetricSourceType
    target_type: MetricTargetType
    resource_name: str | None = None
    metric_name: str | None = None
    metric_selector: str | None = None
    object_api_version: str | None = None
    object_kind: str | None = None
    object_name: str | None = None
    average_utilization: int | None = Field(default=None, ge=1)
    average_value: Quantity | None = None
    value: Quantity | None = None


class AutoScaling(ApiModel):
    """A HorizontalPodAutoscaler for a component (AutoScalingSpec)."""

    enabled: bool = False
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    metrics: list[ScaleMetric] | None = None


class ExecAction(ApiModel):
    """A probe that runs a command in the container (Kubernetes' ExecAction)."""

    command: list[str] = Field(default_factory=list)


class HttpHeader(ApiModel):
    """A header an HTTP probe sends."""

    name: str
    value: Str


class HttpGetAction(ApiModel):
    """A probe that sends an HTTP GET (Kubernetes' HTTPGetAction)."""

    scheme: str | None = None
    path: str | None = None
    host: str | None = None
    http_headers: list[HttpHeader] | None = None
    port: IntOrString


class TcpSocketAction(ApiModel):
    """A probe that opens a TCP connection (Kubernetes' TCPSocketAction)."""

    host: str | None = None
    port: IntOrString


class Probe(ApiModel):
    """A container probe (ProbeV1), rendered with its handler (exec, httpGet or tcpSocket) and timings."""

    exec: ExecAction | None = None
    http_get: HttpGetAction | None = None
    tcp_socket: TcpSocketAction | None = None
    initial_delay_seconds: int | None = Field(default=None, ge=0)
    period_seconds: int | None = Field(default=None, ge=1)
    timeout_seconds: int | None = Field(default=None, ge=1)
    success_threshold: int | None = Field(default=None, ge=1)
    failure_threshold: int | None = Field(default=None, ge=1)
