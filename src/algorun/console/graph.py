"""The pipeline as a graph, computed purely from its topology.

Nodes: one per endpoint path, algo instance, data connector and event-hook input, plus each algo's retry topics
and dead-letter topic. Edges: one per pipe, labelled with the topic that carries it, plus each algo's retry
branch (algo -> retry topic -> algo) and its dead-letter branch. Every node names the pipeline component whose
figures and processes it shows (`Endpoint`, an algo's full name, `EventHook`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from algorun.api import naming
from algorun.api.topology import Topology, is_hook_name

NodeKind = Literal["endpoint", "algo", "connector", "hook", "retry", "dead-letter"]
EdgeKind = Literal["data", "retry", "dead-letter"]

ENDPOINT = "Endpoint"
EVENT_HOOK = "EventHook"


@dataclass(frozen=True)
class Node:
    """One box of the graph, naming the pipeline component whose figures and processes it shows."""

    id: str
    kind: NodeKind
    label: str
    component: str
    detail: str = ""
    topic: str | None = None
    """For retry and dead-letter nodes: the topic they stand for."""
    replicas: int | None = None


@dataclass(frozen=True)
class Edge:
    """One arrow of the graph: a pipe (labelled with its topic), a retry branch or a dead-letter branch."""

    id: str
    source: str
    target: str
    kind: EdgeKind
    topic: str | None
    label: str


@dataclass
class Graph:
    """The pipeline's nodes and edges, as the page draws them."""

    pipeline: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "nodes": [asdict(n) for n in self.nodes],
            "edges": [asdict(e) for e in self.edges],
        }


def endpoint_id(path: str) -> str:
    return f"endpoint:{path}"


def algo_id(full_name: str) -> str:
    return f"algo:{full_name}"


def connector_id(full_name: str) -> str:
    return f"connector:{full_name}"


def hook_id(input_name: str) -> str:
    return f"hook:{input_name}"


def build_graph(topology: Topology) -> Graph:
    """Every component and pipe of `topology` as nodes and edges; unresolved algos and connectors are left out
    (a pipeline with them does not load)."""
    graph = Graph(pipeline=f"{topology.owner}/{topology.name}")
    algos = {a.full_name for a in topology.algos if a.full_name}
    connectors = {c.full_name for c in topology.connectors if c.full_name}
    for path in topology.spec.endpoint.paths:
        graph.nodes.append(
            Node(endpoint_id(path.name), "endpoint", f"/{path.name}", ENDPOINT, detail=path.content_type or "")
        )
    for node in topology.algos:
        if node.full_name is None or node.spec is None:
            continue
        graph.nodes.append(
            Node(
                algo_id(node.full_name),
                "algo",
                node.full_name,
                node.full_name,
                detail=node.spec.executor.value if node.spec.executor else "",
                replicas=node.deployment.replicas,
            )
        )
        plan = topology.retry_plan(node)
        for backoff, topic in plan.retry_topics.items():  # in the order of the strategy's steps
            retry = f"retry:{topic}"
            graph.nodes.append(Node(retry, "retry", f"retry after {backoff}", node.full_name, topic=topic))
            graph.edges.append(
                Edge(f"{algo_id(node.full_name)}->{retry}", algo_id(node.full_name), retry, "retry", topic, "failed")
            )
            graph.edges.append(
                Edge(f"{retry}->{algo_id(node.full_name)}", retry, algo_id(node.full_name), "retry", topic, topic)
            )
        dead = f"dead-letter:{plan.dead_letter_topic}"
        graph.nodes.append(Node(dead, "dead-letter", "dead letters", node.full_name, topic=plan.dead_letter_topic))
        graph.edges.append(
            Edge(
                f"{algo_id(node.full_name)}->{dead}",
                algo_id(node.full_name),
                dead,
                "dead-letter",
                plan.dead_letter_topic,
                plan.dead_letter_topic,
            )
        )
    for connector in topology.connectors:
        if connector.full_name is not None:
            graph.nodes.append(
                Node(connector_id(connector.full_name), "connector", connector.full_name, connector.full_name)
            )
    urls: dict[str, list[str]] = {}
    for hook in topology.spec.event_hook.web_hooks:
        urls.setdefault(hook.pipeline_hook_input_name, []).append(hook.web_hook_url)
    for pipe in topology.spec.pipes:
        if is_hook_name(pipe):
            urls.setdefault(pipe.dest_input_name, [])  # piped into, with no webhook: shown, delivering nowhere
    for input_name, targets in urls.items():
        graph.nodes.append(
            Node(
                hook_id(input_name), "hook", f"hook {input_name}", EVENT_HOOK, detail=", ".join(targets) or "no webhook"
            )
        )
    hook_dlq = topology.hook_dead_letter_topic()
    if hook_dlq:
        dead = f"dead-letter:{hook_dlq}"
        graph.nodes.append(Node(dead, "dead-letter", "hook dead letters", EVENT_HOOK, topic=hook_dlq))
        for hook_node in [n for n in graph.nodes if n.kind == "hook"]:
            graph.edges.append(Edge(f"{hook_node.id}->{dead}", hook_node.id, dead, "dead-letter", hook_dlq, hook_dlq))
    for index, pipe in enumerate(topology.spec.pipes):
        source = _end(pipe.source_name, pipe.source_output_name, algos, connectors)
        target = hook_id(pipe.dest_input_name) if is_hook_name(pipe) else _end(pipe.dest_name, "", algos, connectors)
        if source is None or target is None:
            continue
        carried = topology.topics.get(naming.topic_key(pipe.source_name, pipe.source_output_name))
        name = carried.name if carried else None
        graph.edges.append(Edge(f"pipe{index}", source, target, "data", name, name or ""))
    return graph


def _end(name: str, output: str, algos: set[str], connectors: set[str]) -> str | None:
    if name == ENDPOINT:
        return endpoint_id(output)
    if name in algos:
        return algo_id(name)
    if name in connectors:
        return connector_id(name)
    return None
