"""Render: a PipelineDeployment + operator settings (+ a few cluster facts) -> every object it needs. Pure.

`render()` is what the operator applies and what `algorun render` prints. The output order is stable (by kind,
then namespace, then name), so the same input always gives byte-identical YAML (golden-file tests rely on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from algorun.api.resources import PipelineDeployment
from algorun.api.topology import Topology
from algorun.operator.render.algo import render_algo
from algorun.operator.render.context import ClusterFacts, RenderContext, identity_of
from algorun.operator.render.endpoint import render_endpoint
from algorun.operator.render.hook import render_hook
from algorun.operator.render.ingress import render_routing
from algorun.operator.render.kafka import render_connector, render_topics, render_user
from algorun.operator.render.labels import Identity
from algorun.operator.render.secrets import render_secrets
from algorun.operator.settings import OperatorOptions

__all__ = ["KIND_ORDER", "ClusterFacts", "Rendered", "identity_of", "render"]

KIND_ORDER = [
    "Secret",
    "ConfigMap",
    "KafkaUser",
    "KafkaTopic",
    "Service",
    "Certificate",
    "Deployment",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "Mapping",
    "HTTPRoute",
    "KafkaConnect",
    "KafkaConnector",
]


@dataclass
class Rendered:
    """What one render produced: every object to apply (in a stable order), what is not ready to render yet,
    and which workloads the status expects."""

    ident: Identity
    objects: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    """What is not ready to render yet (e.g. a secret Strimzi has not created); the status reports it."""
    workloads: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) of every Deployment/StatefulSet the status expects."""


def sort_key(obj: dict[str, Any]) -> tuple[int, str, str]:
    kind = obj["kind"]
    order = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    meta = obj["metadata"]
    return order, meta.get("namespace", ""), meta["name"]


def render(
    pipeline: PipelineDeployment,
    topology: Topology,
    settings: OperatorOptions,
    facts: ClusterFacts | None = None,
    default_namespace: str = "default",
) -> Rendered:
    """Every object of a *valid* pipeline (validate it first: unresolved algos and connectors are skipped).

    A pipeline without `kafkaBrokers` gets the configured Strimzi cluster's (`default_kafka_brokers`): every
    component needs brokers on Kubernetes, and an empty value only failed later, in each pod."""
    if not pipeline.spec.kafka_brokers:
        spec = pipeline.spec.model_copy(update={"kafka_brokers": settings.default_kafka_brokers})
        pipeline = pipeline.model_copy(update={"spec": spec})
        topology = replace(topology, spec=spec)
    ctx = RenderContext(
        pipeline=pipeline,
        topology=topology,
        settings=settings,
        facts=facts or ClusterFacts(),
        ident=identity_of(pipeline, default_namespace),
    )
    objects: list[dict[str, Any]] = []
    objects += render_secrets(ctx)
    topics = render_topics(ctx)
    objects += topics
    objects += render_user(ctx, [t["spec"]["topicName"] for t in topics])
    for node in topology.algos:
        if node.spec is not None:
            objects += render_algo(ctx, node)
    objects += render_endpoint(ctx)
    objects += render_routing(ctx)
    objects += render_hook(ctx)
    for cnode in topology.connectors:
        if cnode.spec is not None:
            objects += render_connector(ctx, cnode)
    objects.sort(key=sort_key)
    workloads = [(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    return Rendered(ident=ctx.ident, objects=objects, notes=ctx.notes, workloads=workloads)
