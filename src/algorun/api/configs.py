"""Component configs: what the runner, the endpoint and the hook runner are told, derived from one pipeline.

This is algorun's internal contract (the operator mounts these as JSON files; `algorun run` writes them), so it
is shaped for the components: every topic is already resolved, retry and
dead-letter topics are named, parameters are merged, and each input lists exactly the topics it reads. Kafka
security is not in here; it comes from the environment (`KAFKA_*` variables, see `algorun.bus.settings`), so that
secrets never sit in a ConfigMap.
"""

from __future__ import annotations

from pydantic import Field

from algorun.api import naming
from algorun.api.algo import AlgoInput, AlgoOutput
from algorun.api.base import ApiModel, Param, RetryStrategy
from algorun.api.enums import (
    DataConnectorType,
    EndpointType,
    ExecutableMode,
    ExecutorKind,
    GrpcMode,
    MessageDataType,
    StderrPolicy,
)
from algorun.api.pipeline import ENDPOINT_NAME, EndpointServer, Producer
from algorun.api.topology import AlgoNode, ConnectorNode, Topology


class Identity(ApiModel):
    """Which deployment and pipeline a component serves (metric labels, bucket names, logs)."""

    deployment_owner: str
    deployment_name: str
    pipeline_owner: str
    pipeline_name: str


class KafkaConfig(ApiModel):
    brokers: str | None = Field(default=None, description="Bootstrap servers; KAFKA_BROKERS overrides it")
    params: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka settings for this component's producer (the endpoint's `kafka.params`); the "
        "security settings from the environment win",
    )


class InputTopic(ApiModel):
    """One topic an input reads, and the pipe it comes from."""

    topic: str
    source_name: str
    source_output_name: str
    message_data_type: MessageDataType = MessageDataType.EMBEDDED
    retry_strategy: RetryStrategy | None = Field(
        default=None, description="Set when the topic overrides the algo's retry strategy"
    )


class RunnerInput(AlgoInput):
    topics: list[InputTopic] = Field(default_factory=list)


class RunnerOutput(AlgoOutput):
    topic: str | None = Field(default=None, description="Where this output is produced; None: not piped")
    message_data_type: MessageDataType = MessageDataType.EMBEDDED


class RetryConfig(ApiModel):
    enabled: bool = False
    strategy: RetryStrategy | None = None
    retry_topics: dict[str, str] = Field(default_factory=dict, description="backoff duration -> retry topic")
    dead_letter_topic: str


class RunnerRuntime(ApiModel):
    """How the runner runs the algo (from the Algo and the instance); unset fields keep the runner's defaults,
    and the runner's CLI options or ALGORUN_RUNNER_* variables override them."""

    exec_mode: ExecutableMode | None = None
    grpc_mode: GrpcMode | None = None
    stderr_policy: StderrPolicy | None = None
    concurrency: int | None = None
    workers: int | None = None
    key_concurrency: bool | None = None
    exactly_once: bool | None = None
    stream_window: int | None = None
    staging_ttl_seconds: int | None = None


class RunnerConfig(ApiModel):
    """Everything one algo instance's runner needs."""

    identity: Identity
    owner: str
    name: str
    version: str
    index: int
    full_name: str
    executor: ExecutorKind
    entrypoint: str | None = None
    parameters: list[Param] = Field(default_factory=list)
    inputs: list[RunnerInput] = Field(default_factory=list)
    outputs: list[RunnerOutput] = Field(default_factory=list)
    write_all_outputs: bool = False
    timeout_seconds: int | None = None
    consumer_group: str
    retry: RetryConfig
    gpu_enabled: bool = False
    runtime: RunnerRuntime = Field(default_factory=RunnerRuntime)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)


class EndpointPathConfig(ApiModel):
    name: str
    topic: str
    partitions: int = 1
    content_type: str | None = None
    message_data_type: MessageDataType = MessageDataType.EMBEDDED
    endpoint_type: EndpointType | None = None
    is_default: bool = False


class EndpointConfig(ApiModel):
    """The ingestion endpoint: routes `/{deploymentOwner}/{deploymentName}/{path}` to topics."""

    identity: Identity
    paths: list[EndpointPathConfig] = Field(default_factory=list)
    server: EndpointServer | None = None
    producer: Producer | None = None
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)


class HookTarget(ApiModel):
    pipeline_hook_input_name: str
    web_hook_url: str
    http_verb: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)


class HookConfig(ApiModel):
    """The event-hook runner: which topics feed which hook input, and the webhooks of each input."""

    identity: Identity
    consumer_group: str
    dead_letter_topic: str
    inputs: dict[str, list[str]] = Field(default_factory=dict, description="hook input name -> topics")
    web_hooks: list[HookTarget] = Field(default_factory=list)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)


def identity(topology: Topology) -> Identity:
    spec = topology.spec
    return Identity(
        deployment_owner=spec.deployment_owner,
        deployment_name=spec.deployment_name,
        pipeline_owner=spec.effective_pipeline_owner,
        pipeline_name=spec.effective_pipeline_name,
    )


def merged_parameters(node: AlgoNode) -> list[Param]:
    """The algo's default parameters overridden by the instance's,
    instance-only parameters appended, then ordered by sortOrder (stable)."""
    defaults = list(node.spec.parameters or []) if node.spec else []
    overrides = {p.name: p for p in node.deployment.parameters or []}
    merged = [overrides.pop(p.name, p) for p in defaults]
    merged.extend(overrides.values())
    return sorted(merged, key=lambda p: p.sort_order if p.sort_order is not None else 0)


def _output_data_type(topology: Topology, full_name: str, output: str) -> MessageDataType:
    for pipe in topology.spec.pipes:
        if (
            pipe.source_name == full_name
            and pipe.source_output_name == output
            and pipe.source_output_message_data_type == MessageDataType.FILE_REFERENCE
        ):
            return MessageDataType.FILE_REFERENCE
    return MessageDataType.EMBEDDED


def _source_data_type(topology: Topology, source: str, output: str) -> MessageDataType:
    if source == ENDPOINT_NAME:
        path = topology.spec.endpoint.path(output)
        return path.message_data_type if path else MessageDataType.EMBEDDED
    return _output_data_type(topology, source, output)


def runner_config(topology: Topology, node: AlgoNode) -> RunnerConfig:
    """The runner config of one algo instance. The node's spec must be resolved."""
    if node.spec is None or node.full_name is None:
        raise ValueError(f"{node.path}: the algo reference is not resolved")
    spec, dep, full_name = node.spec, node.deployment, node.full_name
    chosen = spec.version(dep.version)
    inputs: list[RunnerInput] = []
    feeds = topology.pipes_into(full_name)
    for algo_input in spec.inputs:
        topics = [
            InputTopic(
                topic=topic.name,
                source_name=pipe.source_name,
                source_output_name=pipe.source_output_name,
                message_data_type=pipe.source_output_message_data_type
                or _source_data_type(topology, pipe.source_name, pipe.source_output_name),
                retry_strategy=topic.config.retry_strategy if topic.config.override_retry_strategy else None,
            )
            for _, pipe, topic in feeds
            if pipe.dest_input_name == algo_input.name and topic is not None
        ]
        inputs.append(RunnerInput(**algo_input.model_dump(), topics=topics))
    outputs = []
    for output in spec.outputs:
        topic = topology.topics.get(naming.topic_key(full_name, output.name))
        outputs.append(
            RunnerOutput(
                **output.model_dump(),
                topic=topic.name if topic else None,
                message_data_type=_output_data_type(topology, full_name, output.name),
            )
        )
    plan = topology.retry_plan(node)
    return RunnerConfig(
        identity=identity(topology),
        owner=spec.owner,
        name=spec.name,
        version=dep.version,
        index=dep.index,
        full_name=full_name,
        executor=spec.effective_executor,
        entrypoint=chosen.entrypoint if chosen else None,
        parameters=merged_parameters(node),
        inputs=inputs,
        outputs=outputs,
        write_all_outputs=bool(dep.write_all_outputs),
        timeout_seconds=dep.timeout_seconds,
        consumer_group=naming.consumer_group(topology.owner, topology.name, spec.owner, spec.name, dep.index),
        retry=RetryConfig(
            enabled=plan.enabled,
            strategy=plan.strategy,
            retry_topics=plan.retry_topics,
            dead_letter_topic=plan.dead_letter_topic,
        ),
        gpu_enabled=bool(spec.gpu_enabled),
        runtime=RunnerRuntime(
            exec_mode=spec.executable_mode,
            grpc_mode=spec.grpc_mode,
            stderr_policy=spec.stderr_policy,
            concurrency=dep.concurrency,
            workers=dep.workers,
            key_concurrency=dep.key_concurrency,
            exactly_once=dep.exactly_once,
            stream_window=dep.stream_window,
            staging_ttl_seconds=dep.staging_ttl_seconds,
        ),
        kafka=KafkaConfig(brokers=topology.spec.kafka_brokers),
    )


def endpoint_config(topology: Topology) -> EndpointConfig:
    endpoint = topology.spec.endpoint
    paths = []
    for path in endpoint.paths:
        topic = topology.topics[naming.topic_key(ENDPOINT_NAME, path.name)]
        paths.append(
            EndpointPathConfig(
                name=path.name,
                topic=topic.name,
                partitions=topic.partitions,
                content_type=path.content_type,
                message_data_type=path.message_data_type,
                endpoint_type=path.endpoint_type,
                is_default=bool(path.is_default),
            )
        )
    return EndpointConfig(
        identity=identity(topology),
        paths=paths,
        server=endpoint.server,
        producer=endpoint.producer,
        kafka=KafkaConfig(
            brokers=",".join(endpoint.kafka.brokers)
            if endpoint.kafka and endpoint.kafka.brokers
            else None or topology.spec.kafka_brokers,
            params=dict(endpoint.kafka.params or {}) if endpoint.kafka else {},
        ),
    )


def hook_config(topology: Topology) -> HookConfig:
    from algorun.api.headers import parse_http_headers

    hook_dlq = topology.hook_dead_letter_topic() or naming.hook_dead_letter_topic(topology.owner, topology.name)
    return HookConfig(
        identity=identity(topology),
        consumer_group=naming.hook_consumer_group(topology.owner, topology.name),
        dead_letter_topic=hook_dlq,
        inputs={name: [t.name for t in topics] for name, topics in topology.hook_inputs().items()},
        web_hooks=[
            HookTarget(
                pipeline_hook_input_name=h.pipeline_hook_input_name,
                web_hook_url=h.web_hook_url,
                http_verb=(h.http_verb or "POST").upper(),
                headers=parse_http_headers(h.http_headers) if h.http_headers else {},
            )
            for h in topology.spec.event_hook.web_hooks
        ],
        kafka=KafkaConfig(brokers=topology.spec.kafka_brokers),
    )


BYTES_CONVERTER = "org.apache.kafka.connect.converters.ByteArrayConverter"


def connector_config(topology: Topology, node: ConnectorNode) -> dict[str, str]:
    """The Kafka Connect configuration of one connector instance (KafkaConnector `config`, or the body of a
    Connect REST `PUT /connectors/{name}/config` without `connector.class`/`tasks.max`).

    The template's options are overridden by the instance's. A source connector is told its output topic
    (`topic`, the key Kafka's own connectors read) unless the options name one; a sink connector gets every
    upstream topic in `topics`, one per pipe into it.

    Keys and values cross between Kafka and the connector as bytes (`ByteArrayConverter`) unless the options
    name a converter: a pipeline's topics hold payloads as the algos wrote them, and the worker's own default
    (JSON with a schema envelope under Strimzi) would wrap every record a source writes and expect the
    envelope in every record a sink reads. A connector whose records are text or structs names its converter
    in `options` (the FileStream example uses `StringConverter`).
    """
    if node.spec is None or node.full_name is None:
        raise ValueError(f"{node.path}: the data connector reference is not resolved")
    config = {"key.converter": BYTES_CONVERTER, "value.converter": BYTES_CONVERTER, **node.options()}
    if node.spec.data_connector_type == DataConnectorType.SOURCE:
        outputs = [
            topology.topics[naming.topic_key(node.full_name, t.output_name or "")] for t in node.deployment.topics
        ]
        if outputs and "topic" not in config and "topics" not in config:
            config["topic"] = outputs[0].name
    else:
        upstream = sorted({topic.name for _, _, topic in topology.pipes_into(node.full_name) if topic is not None})
        config["topics"] = ",".join(upstream)
    return config


def connector_name(topology: Topology, node: ConnectorNode) -> str:
    """The connector's name on the Connect cluster (also the KafkaConnector object name)."""
    name = node.spec.name if node.spec else f"connector-{node.position}"
    return naming.object_name(topology.name, name, node.deployment.index)
