"""The PipelineDeployment kind's spec: algos, data connectors, the endpoint, event hooks and pipes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from algorun.api.algo import AlgoSpec
from algorun.api.base import (
    ApiModel,
    AutoScaling,
    ContainerImage,
    CustomResourceRef,
    Duration,
    Param,
    Probe,
    Quantity,
    ResourceRequirements,
    RetryStrategy,
    Str,
    TopicConfig,
)
from algorun.api.dataconnector import DataConnectorSpec
from algorun.api.enums import ComponentType, EndpointType, MessageDataType, WalMode
from algorun.api.naming import DNS_SUBDOMAIN_PATTERN, SECRET_KEY_PATTERN

ENDPOINT_NAME = "Endpoint"
"""The source name pipes use for the ingestion endpoint."""

EVENT_HOOK_NAME = "EventHook"
"""The destination name pipes use for the event hook."""


class ConfigMount(ApiModel):
    """A file placed into the algo container (from the algo's ConfigMap)."""

    name: str
    mount_path: str
    data: str


class AlgoDeployment(ApiModel):
    """One algo instance in a pipeline (AlgoDeploymentV1beta1). Give either `algoRef` or an inline `spec`."""

    algo_ref: CustomResourceRef | None = None
    spec: AlgoSpec | None = None
    version: Str
    index: int = Field(ge=0)
    config_mounts: list[ConfigMount] | None = None
    parameters: list[Param] | None = Field(
        default=None, description="Parameter values for this instance; they override the algo's defaults"
    )
    retry_enabled: bool | None = None
    retry_strategy: RetryStrategy | None = None
    write_all_outputs: bool | None = None
    timeout_seconds: int | None = Field(default=None, ge=0)
    topics: list[TopicConfig] = Field(default_factory=list)
    concurrency: int | None = Field(default=None, ge=1, description="Messages in flight at once per runner")
    workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Runner processes in each pod, each a member of the instance's consumer group; the runner's "
        "container requests a CPU per worker unless its resources set a CPU request or limit",
    )
    key_concurrency: bool | None = Field(
        default=None, description="Run messages of different keys of one partition in parallel (order per key)"
    )
    exactly_once: bool | None = Field(
        default=None, description="Commit outputs and input offsets in Kafka transactions (Kafka-only side effects)"
    )
    stream_window: int | None = Field(
        default=None, ge=1, description="Streaming executables: frames in flight to the process"
    )
    staging_ttl_seconds: int | None = Field(
        default=None, ge=1, description="Staged parts whose trigger never comes are dead-lettered after this"
    )
    algo_runner_image: ContainerImage | None = None
    replicas: int = Field(default=1, ge=0)
    resources: ResourceRequirements | None = None
    autoscaling: AutoScaling | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None


class DataConnectorDeployment(ApiModel):
    """One Kafka Connect connector in a pipeline (DataConnectorDeploymentV1beta1)."""

    data_connector_ref: CustomResourceRef | None = None
    spec: DataConnectorSpec | None = None
    version: Str
    index: int = Field(default=0, ge=0)
    tasks_max: int | None = Field(default=None, ge=1)
    topics: list[TopicConfig] = Field(default_factory=list)
    options: dict[str, Str] | None = None
    replicas: int = Field(default=1, ge=0)
    resources: ResourceRequirements | None = None
    autoscaling: AutoScaling | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None


class EndpointPath(ApiModel):
    """One ingestion path: `POST /{owner}/{name}/{path name}` (HTTP) or the same path over gRPC."""

    name: str
    is_default: bool | None = None
    endpoint_type: EndpointType | None = None
    message_data_type: MessageDataType = MessageDataType.EMBEDDED
    content_type: str | None = None
    topic: TopicConfig | None = Field(
        default=None, description="The topic this path writes to; the documented default name when omitted"
    )


class SnakeModel(BaseModel):
    """The endpoint's `producer` block has snake_case JSON keys (`rate_limit`), as existing pipelines write them."""

    model_config = ConfigDict(extra="forbid")


class CircuitBreaker(SnakeModel):
    """The breaker on broker acks: `fails` failures in a row open it for `timeout`, `requests` good probes close it."""

    interval: int | None = Field(
        default=None,
        ge=0,
        description="Seconds after which a closed breaker forgets counted failures (0: never). The original read "
        "this integer as nanoseconds, which made every value useless.",
    )
    timeout: Duration | None = None
    fails: int | None = Field(default=None, ge=1)
    requests: int | None = Field(default=None, ge=1)


class Resend(SnakeModel):
    """Forwarding of the write-ahead log: at most `rate_limit` messages/s (`period` is accepted, not used)."""

    period: Duration | None = None
    rate_limit: int | None = Field(default=None, ge=1)


class WriteAheadLog(SnakeModel):
    """The endpoint's write-ahead log: accepted messages are on local disk before the client is answered."""

    mode: WalMode | None = None
    in_memory: bool | None = None
    path: str | None = None
    size: Quantity | None = None
    always_topics: list[str] | None = None
    disable_topics: list[str] | None = None


class Producer(SnakeModel):
    """How the endpoint stores what it accepts: circuit breaker, write-ahead log and the log's forwarding."""

    cb: CircuitBreaker | None = None
    resend: Resend | None = None
    wal: WriteAheadLog | None = None


class Listen(ApiModel):
    """An address to listen on: `:port`, `host:port`, a bare port or a URL with a port."""

    listen: str | None = None


class EndpointServer(ApiModel):
    """The endpoint's listen addresses; the environment's `EP_SERVER_*_LISTEN` override them."""

    http: Listen | None = None
    grpc: Listen | None = None
    monitoring: Listen | None = None


class EndpointKafka(ApiModel):
    """The endpoint's brokers (default: the pipeline's `kafkaBrokers`) and its producer's librdkafka settings."""

    brokers: list[str] | None = None
    params: dict[str, Str] | None = None


class EndpointAuth(ApiModel):
    """Who may send data: a bearer token or an API key listed in a Secret; without this block, anyone."""

    secret_name: str = Field(
        # The pattern is for the API server's own check; `validate_spec` says what is wrong in words.
        json_schema_extra={"pattern": DNS_SUBDOMAIN_PATTERN, "minLength": 1, "maxLength": 253},
        description="The Secret with the credentials (one per line), in the deployment's namespace. Until it holds "
        "at least one, the endpoint refuses to start (it never runs open by mistake); changes apply without a restart",
    )
    bearer_tokens_key: str = Field(
        default="bearerTokens",
        json_schema_extra={"pattern": SECRET_KEY_PATTERN},
        description="Key of the bearer tokens",
    )
    api_keys_key: str = Field(
        default="apiKeys", json_schema_extra={"pattern": SECRET_KEY_PATTERN}, description="Key of the API keys"
    )


class EndpointSpec(ApiModel):
    """The ingestion gateway (EndpointSpec). It is deployed when it has at least one path."""

    image: ContainerImage | None = None
    replicas: int = Field(default=1, ge=0)
    resources: ResourceRequirements | None = None
    autoscaling: AutoScaling | None = None
    paths: list[EndpointPath] = Field(default_factory=list)
    server: EndpointServer | None = None
    producer: Producer | None = None
    kafka: EndpointKafka | None = None
    auth: EndpointAuth | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None

    def path(self, name: str) -> EndpointPath | None:
        return next((p for p in self.paths if p.name == name), None)


class WebHook(ApiModel):
    """A webhook that receives the messages piped into the event hook input `pipelineHookInputName`."""

    pipeline_hook_input_name: str
    web_hook_url: str
    http_verb: str | None = Field(default=None, description="HTTP method, POST when omitted")
    http_headers: str | None = Field(
        default=None,
        description='Extra request headers: a JSON object, or "Name: value" pairs separated by ";" or newlines',
    )


class EventHookSpec(ApiModel):
    """The event-hook runner (EventHookSpec). It is deployed when it has at least one webhook."""

    image: ContainerImage | None = None
    replicas: int = Field(default=1, ge=0)
    resources: ResourceRequirements | None = None
    autoscaling: AutoScaling | None = None
    web_hooks: list[WebHook] = Field(default_factory=list)
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None


class Pipe(ApiModel):
    """A connection from a component's output to another component's input (PipeModel).

    Names: `owner/name:version[index]` for an algo, `name:version[index]` for a data connector,
    `Endpoint` for the endpoint, `EventHook` for the event hook.
    """

    source_component_type: ComponentType | None = None
    source_name: str
    source_output_name: str
    source_output_message_data_type: MessageDataType | None = None
    dest_component_type: ComponentType | None = None
    dest_name: str
    dest_input_name: str


class PipelineDeploymentSpec(ApiModel):
    """A pipeline deployment (PipelineDeploymentSpecV1beta1)."""

    deployment_namespace: str | None = None
    deployment_owner: str
    deployment_name: str
    pipeline_owner: str | None = Field(default=None, description="Defaults to deploymentOwner")
    pipeline_name: str | None = Field(default=None, description="Defaults to deploymentName")
    pipeline_version_tag: Str | None = None
    kafka_brokers: str | None = Field(
        default=None,
        description="Comma-separated Kafka bootstrap servers; on Kubernetes the operator's Strimzi cluster's"
        " bootstrap Service when not given",
    )
    storage_bucket: str | None = None
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    algos: list[AlgoDeployment] = Field(default_factory=list)
    data_connectors: list[DataConnectorDeployment] = Field(default_factory=list)
    event_hook: EventHookSpec = Field(default_factory=EventHookSpec)
    pipes: list[Pipe] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: object) -> object:
        """`endpoint: ~` and `eventHook: ~` mean "none", like leaving them out."""
        if isinstance(data, dict):
            data = dict(data)
            for key in ("endpoint", "eventHook", "event_hook", "algos", "dataConnectors", "pipes"):
                if key in data and data[key] is None:
                    del data[key]
        return data

    @property
    def effective_pipeline_owner(self) -> str:
        return self.pipeline_owner or self.deployment_owner

    @property
    def effective_pipeline_name(self) -> str:
        return self.pipeline_name or self.deployment_name
