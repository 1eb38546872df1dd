"""The console's graph of a pipeline: every component, pipe, retry and dead-letter branch of the examples."""

from __future__ import annotations

from algorun.api import load_pipeline
from algorun.console.graph import build_graph
from tests.support.paths import EXAMPLES


def test_retry_dead_letter_example_has_every_branch() -> None:
    _, topology = load_pipeline([EXAMPLES / "retry-dead-letter" / "pipeline.yaml"])
    graph = build_graph(topology)
    plan = topology.retry_plan(topology.algos[0])
    algo = "algo:shop/charge:1[1]"
    assert {n.id for n in graph.nodes} == {
        "endpoint:charges",
        algo,
        "hook:receipts",
        *(f"retry:{t}" for t in plan.retry_topics.values()),
        f"dead-letter:{plan.dead_letter_topic}",
        f"dead-letter:{topology.hook_dead_letter_topic()}",
    }
    edges = {(e.source, e.target, e.kind) for e in graph.edges}
    assert ("endpoint:charges", algo, "data") in edges
    assert (algo, "hook:receipts", "data") in edges
    for topic in plan.retry_topics.values():
        assert {(algo, f"retry:{topic}", "retry"), (f"retry:{topic}", algo, "retry")} <= edges
    assert (algo, f"dead-letter:{plan.dead_letter_topic}", "dead-letter") in edges
    # The retry steps in the order the strategy runs them.
    assert [n.label for n in graph.nodes if n.kind == "retry"] == ["retry after 500ms", "retry after 2s"]


def test_every_pipe_of_every_example_is_an_edge_with_its_topic() -> None:
    for name in ("text-transform", "fan-out-fan-in", "retry-dead-letter", "original-sample"):
        files = sorted((EXAMPLES / name).glob("*.yaml"))
        pipeline = next(f for f in files if "PipelineDeployment" in f.read_text())
        _, topology = load_pipeline([pipeline, *(f for f in files if f != pipeline)])
        graph = build_graph(topology)
        data = [e for e in graph.edges if e.kind == "data"]
        assert len(data) == len(topology.spec.pipes), name
        assert all(e.topic for e in data), name
        ids = {n.id for n in graph.nodes}
        assert all(e.source in ids and e.target in ids for e in graph.edges), name
