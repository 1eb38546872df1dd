"""Strimzi objects: KafkaTopics, the KafkaUser, and a KafkaConnect + KafkaConnector per data connector.

They are written in the `kafka.strimzi.io` version the cluster serves (`ClusterFacts.strimzi_version`), in the form
that version's schema requires. Field by field, v1 (Strimzi 1.x) and v1beta2 (0.x) differ in what is written here
only for KafkaConnect: v1 requires `groupId`, `offsetStorageTopic`, `configStorageTopic` and `statusStorageTopic`
as spec fields and refuses those keys in `spec.config`, where v1beta2 (every 0.x release) takes them. KafkaTopic
(`topicName`, `partitions`, `replicas`, `config`), KafkaUser (`authentication.type` tls or scram-sha-512,
`authorization` simple with `acls[].resource` and `operations`) and KafkaConnector (`class`, `tasksMax`, `config`)
are written the same way in both.

Retry and dead-letter topics are provisioned like the others. The KafkaUser has the configured auth type and
ACLs for exactly the topics and consumer groups the pipeline uses (retry and dead-letter topics, Kafka Connect's
groups and storage topics included), no more. Each Connect cluster has its own group id and storage topics, so
two clusters never collide; a source connector is told its output topic, and a sink connector every upstream
topic. docs/compat.md ("Operator and Kubernetes objects") lists what differs from Algo.Run's operator.

Each Connect cluster exports its metrics through Strimzi's JMX exporter (`metricsConfig`, rules in a ConfigMap of
its own) on the pods' port 9404, and a Service labelled like every other algo.run component's metrics Service
(`app.kubernetes.io/component=dataconnector`, port `metrics`) selects those pods, so the chart's data-connector
ServiceMonitor finds them: Strimzi's own Services expose only the REST API.
"""

from __future__ import annotations

from typing import Any

from algorun.api import naming
from algorun.api.configs import connector_config
from algorun.api.enums import KafkaAuthType
from algorun.api.topology import ConnectorNode
from algorun.operator.apis import STRIMZI_GROUP
from algorun.operator.render import security
from algorun.operator.render.context import RenderContext
from algorun.operator.render.labels import (
    DATACONNECTOR,
    DATACONNECTOR_VERSION,
    INDEX,
    STRIMZI_CLUSTER,
    common_labels,
    metadata,
    suffixed,
)
from algorun.operator.render.workload import probe, resources

CONNECT_STORAGE_FIELDS = ("offsetStorageTopic", "configStorageTopic", "statusStorageTopic")
CONNECT_STORAGE_KEYS = ("offset.storage.topic", "config.storage.topic", "status.storage.topic")
CONNECT_METRICS_PORT = 9404  # Strimzi's JMX exporter port on Connect pods (container port `tcp-prometheus`)
CONNECT_METRICS_KEY = "metrics-config.yml"
CONNECT_METRICS_RULES = """\
# JMX exporter rules (rendered by algorun): Kafka Connect's worker, connector and task metrics, labelled by
# connector and task; attribute names (source-record-poll-rate, ...) become the metric names' last part.
lowercaseOutputName: true
lowercaseOutputLabelNames: true
rules:
  - pattern: 'kafka.connect<type=([a-z-]+)-metrics, connector=([^,]+), task=([^>]+)><>([a-z-]+)'
    name: kafka_connect_$1_$4
    labels: {connector: "$2", task: "$3"}
    type: GAUGE
  - pattern: 'kafka.connect<type=([a-z-]+)-metrics, connector=([^>]+)><>([a-z-]+)'
    name: kafka_connect_$1_$3
    labels: {connector: "$2"}
    type: GAUGE
  - pattern: 'kafka.connect<type=([a-z-]+)-metrics><>([a-z-]+)'
    name: kafka_connect_$1_$2
    type: GAUGE
"""


def strimzi_api(ctx: RenderContext) -> str:
    """The apiVersion of every Strimzi object of this render."""
    return f"{STRIMZI_GROUP}/{ctx.facts.strimzi_version}"


def topic_object_name(topic: str) -> str:
    """The KafkaTopic's metadata.name: the topic name made DNS-safe (`.` and `_` become `-`)."""
    return naming.object_name(topic)


def _topic(
    ctx: RenderContext, name: str, partitions: int, replicas: int | None, config: dict[str, str]
) -> dict[str, Any]:
    labels = {**common_labels(ctx.ident, "topic"), STRIMZI_CLUSTER: ctx.settings.kafka_cluster_name}
    spec: dict[str, Any] = {"topicName": name, "partitions": max(partitions, 1)}
    if replicas:
        spec["replicas"] = replicas
    if config:
        spec["config"] = dict(sorted(config.items()))
    return {
        "apiVersion": strimzi_api(ctx),
        "kind": "KafkaTopic",
        "metadata": metadata(ctx.ident, topic_object_name(name), ctx.settings.kafka_namespace, labels),
        "spec": spec,
    }


def render_topics(ctx: RenderContext) -> list[dict[str, Any]]:
    """Data topics with their planned partitions, then each algo's retry topics (as many partitions as its
    widest input, so retries keep the parallelism) and dead-letter topic, and the hook's dead-letter topic."""
    topo = ctx.topology
    topics: dict[str, dict[str, Any]] = {}
    for plan in topo.topics.values():
        topics.setdefault(plan.name, _topic(ctx, plan.name, plan.partitions, plan.replication_factor, plan.params))
    for node in topo.algos:
        if node.full_name is None:
            continue
        inputs = [t for _, _, t in topo.pipes_into(node.full_name) if t is not None]
        partitions = max((t.partitions for t in inputs), default=1)
        replicas = max((t.replication_factor or 0 for t in inputs), default=0) or None
        retry = topo.retry_plan(node)
        for topic in retry.retry_topics.values():
            topics.setdefault(topic, _topic(ctx, topic, partitions, replicas, {}))
        topics.setdefault(retry.dead_letter_topic, _topic(ctx, retry.dead_letter_topic, 1, replicas, {}))
    hook_dlq = topo.hook_dead_letter_topic()
    if hook_dlq:
        topics.setdefault(hook_dlq, _topic(ctx, hook_dlq, 1, None, {}))
    return [topics[name] for name in sorted(topics)]


def keep_partitions(desired: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    """Kafka cannot shrink a topic: keep the live partition count when the desired one is lower."""
    if live is None:
        return desired
    live_partitions = (live.get("spec") or {}).get("partitions")
    wanted = desired["spec"].get("partitions", 1)
    if isinstance(live_partitions, int) and live_partitions > wanted:
        return {**desired, "spec": {**desired["spec"], "partitions": live_partitions}}
    return desired


# ----- connectors ----------------------------------------------------------------------------------------


def connect_name(ctx: RenderContext, node: ConnectorNode) -> str:
    assert node.spec is not None
    return naming.object_name(ctx.owner, ctx.name, node.spec.name, node.deployment.index)


def connect_group(ctx: RenderContext, node: ConnectorNode) -> str:
    """The Connect cluster's group id; its storage topics are `<group>-offsets|configs|status`."""
    assert node.spec is not None
    return f"algorun-{ctx.owner}-{ctx.name}-{node.spec.name}-{node.deployment.index}-connect".lower()


def connect_storage_topics(ctx: RenderContext, node: ConnectorNode) -> list[str]:
    group = connect_group(ctx, node)
    return [f"{group}-offsets", f"{group}-configs", f"{group}-status"]


def _labels(ctx: RenderContext, node: ConnectorNode) -> dict[str, str]:
    assert node.spec is not None
    return {
        **common_labels(ctx.ident, "dataconnector"),
        DATACONNECTOR: node.spec.name,
        DATACONNECTOR_VERSION: node.deployment.version,
        INDEX: str(node.deployment.index),
    }


def _authentication(ctx: RenderContext) -> dict[str, Any] | None:
    s = ctx.settings
    auth = s.kafka_auth_type
    if auth == KafkaAuthType.TLS:
        return {
            "type": "tls",
            "certificateAndKey": {
                "secretName": security.user_secret_name(ctx),
                "certificate": s.kafka_auth_certificate_key,
                "key": s.kafka_auth_key_secret_key,
            },
        }
    if auth in (KafkaAuthType.SCRAM_SHA_512, KafkaAuthType.PLAIN):
        return {
            "type": auth.value,
            "username": s.kafka_username(ctx.owner, ctx.name) or "",
            "passwordSecret": {
                "secretName": security.user_secret_name(ctx),
                "password": s.kafka_auth_password_secret_key,
            },
        }
    return None


def render_connector(ctx: RenderContext, node: ConnectorNode) -> list[dict[str, Any]]:
    assert node.spec is not None
    spec, dep = node.spec, node.deployment
    name = connect_name(ctx, node)
    group = connect_group(ctx, node)
    storage = dict(zip(CONNECT_STORAGE_KEYS, connect_storage_topics(ctx, node), strict=True))
    connect_spec: dict[str, Any] = {
        "replicas": dep.replicas,
        "bootstrapServers": ctx.topology.spec.kafka_brokers or "",
    }
    replication = {f"{key.rpartition('.')[0]}.replication.factor": -1 for key in CONNECT_STORAGE_KEYS}
    if ctx.facts.strimzi_version == "v1beta2":
        connect_spec["config"] = {"group.id": group, **storage, **replication}
    else:
        connect_spec["groupId"] = group
        for field, key in zip(CONNECT_STORAGE_FIELDS, CONNECT_STORAGE_KEYS, strict=True):
            connect_spec[field] = storage[key]
        connect_spec["config"] = replication
    version = spec.version(dep.version)
    if version and version.image and version.image.repository:
        connect_spec["image"] = version.image.reference()
    if ctx.settings.kafka_tls:
        connect_spec["tls"] = {
            "trustedCertificates": [
                {"secretName": security.ca_secret_name(ctx), "certificate": ctx.settings.kafka_tls_ca_key}
            ]
        }
    auth = _authentication(ctx)
    if auth:
        connect_spec["authentication"] = auth
    res = resources(dep.resources)
    if res:
        connect_spec["resources"] = res
    for key, user_probe in (("livenessProbe", dep.liveness_probe), ("readinessProbe", dep.readiness_probe)):
        timings = probe(user_probe, {})
        if timings:  # Strimzi owns the handler; only the timings are configurable
            connect_spec[key] = {k: v for k, v in timings.items() if k not in ("httpGet", "exec", "tcpSocket")}
    config = connector_config(ctx.topology, node)
    connector_spec: dict[str, Any] = {"class": spec.connector_class or "", "config": dict(sorted(config.items()))}
    if dep.tasks_max:
        connector_spec["tasksMax"] = dep.tasks_max
    labels = _labels(ctx, node)
    metrics_config = suffixed("metrics", ctx.owner, ctx.name, spec.name, dep.index)
    connect_spec["metricsConfig"] = {
        "type": "jmxPrometheusExporter",
        "valueFrom": {"configMapKeyRef": {"name": metrics_config, "key": CONNECT_METRICS_KEY}},
    }
    port = {"name": "metrics", "port": CONNECT_METRICS_PORT, "targetPort": CONNECT_METRICS_PORT, "protocol": "TCP"}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(ctx.ident, metrics_config, ctx.ns, labels),
            "data": {CONNECT_METRICS_KEY: CONNECT_METRICS_RULES},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(ctx.ident, metrics_config, ctx.ns, labels),
            "spec": {"selector": {STRIMZI_CLUSTER: name, "strimzi.io/kind": "KafkaConnect"}, "ports": [port]},
        },
        {
            "apiVersion": strimzi_api(ctx),
            "kind": "KafkaConnect",
            "metadata": metadata(ctx.ident, name, ctx.ns, labels, {"strimzi.io/use-connector-resources": "true"}),
            "spec": connect_spec,
        },
        {
            "apiVersion": strimzi_api(ctx),
            "kind": "KafkaConnector",
            "metadata": metadata(ctx.ident, name, ctx.ns, {**labels, STRIMZI_CLUSTER: name}),
            "spec": connector_spec,
        },
    ]


# ----- user ----------------------------------------------------------------------------------------------


def render_user(ctx: RenderContext, topic_names: list[str]) -> list[dict[str, Any]]:
    """The pipeline's KafkaUser with ACLs for exactly what it uses (tls and scram-sha-512 auth only)."""
    s = ctx.settings
    if not s.kafka_user_managed:
        return []
    topo = ctx.topology
    topics = set(topic_names)
    groups: set[str] = set()
    for node in topo.algos:
        if node.spec is not None:
            groups.add(
                naming.consumer_group(ctx.owner, ctx.name, node.spec.owner, node.spec.name, node.deployment.index)
            )
    if topo.spec.event_hook.web_hooks:
        groups.add(naming.hook_consumer_group(ctx.owner, ctx.name))
    for cnode in topo.connectors:
        if cnode.spec is None:
            continue
        topics.update(connect_storage_topics(ctx, cnode))
        groups.add(connect_group(ctx, cnode))
        groups.add(f"connect-{connect_name(ctx, cnode)}")  # a sink connector's consumer group
    acls: list[dict[str, Any]] = [
        {"resource": {"type": "topic", "name": t, "patternType": "literal"}, "operations": ["All"]}
        for t in sorted(topics)
    ]
    acls += [
        {"resource": {"type": "group", "name": g, "patternType": "literal"}, "operations": ["All"]}
        for g in sorted(groups)
    ]
    acls.append(
        {
            "resource": {"type": "transactionalId", "name": f"algorun-{ctx.owner}-{ctx.name}", "patternType": "prefix"},
            "operations": ["All"],
        }
    )
    labels = {**common_labels(ctx.ident, "kafka-user"), STRIMZI_CLUSTER: s.kafka_cluster_name}
    return [
        {
            "apiVersion": strimzi_api(ctx),
            "kind": "KafkaUser",
            "metadata": metadata(ctx.ident, s.kafka_user_name(ctx.owner, ctx.name), s.kafka_namespace, labels),
            "spec": {
                "authentication": {"type": s.kafka_auth_type.value},
                "authorization": {"type": "simple", "acls": acls},
            },
        }
    ]
