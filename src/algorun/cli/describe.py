"""The readable view of a pipeline for `algorun describe`: components, topics and pipes."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.tree import Tree

from algorun.api.pipeline import ENDPOINT_NAME
from algorun.api.resources import PipelineDeployment
from algorun.api.topology import Resolver, Topology, build_topology


def render_pipeline(pipeline: PipelineDeployment, resolver: Resolver | None = None) -> Group:
    spec = pipeline.spec
    topology = build_topology(spec, resolver)
    title = (
        f"[bold]{spec.deployment_owner}/{spec.deployment_name}[/bold]"
        f"  pipeline {spec.effective_pipeline_owner}/{spec.effective_pipeline_name}"
        + (f" {spec.pipeline_version_tag}" if spec.pipeline_version_tag else "")
    )
    tree = Tree(title)
    _endpoint(tree, topology)
    _algos(tree, topology)
    _connectors(tree, topology)
    _hook(tree, topology)
    return Group(tree, _topics(topology), _pipes(topology))


def _endpoint(tree: Tree, topology: Topology) -> None:
    paths = topology.spec.endpoint.paths
    if not paths:
        return
    node = tree.add(f"[cyan]Endpoint[/cyan]  replicas {topology.spec.endpoint.replicas}")
    owner, name = topology.owner, topology.name
    for path in paths:
        topic = topology.topics.get(f"{ENDPOINT_NAME}|{path.name}")
        node.add(
            f"POST /{owner}/{name}/{path.name}"
            + (f"  ({path.content_type})" if path.content_type else "")
            + (f" -> {topic.name}" if topic else "")
        )


def _algos(tree: Tree, topology: Topology) -> None:
    for algo in topology.algos:
        dep = algo.deployment
        if algo.spec is None:
            ref = dep.algo_ref.name if dep.algo_ref else "?"
            tree.add(f"[magenta]Algo[/magenta] (algoRef {ref}, not resolved: pass its Algo YAML too)")
            continue
        plan = topology.retry_plan(algo)
        node = tree.add(
            f"[magenta]Algo[/magenta] [bold]{algo.full_name}[/bold]  executor {algo.spec.effective_executor.value}"
            f"  replicas {dep.replicas}"
            + (
                f" (autoscaled to {dep.autoscaling.max_replicas})"
                if dep.autoscaling and dep.autoscaling.enabled
                else ""
            )
        )
        for algo_input in algo.spec.inputs:
            sources = [
                f"{topic.name}" if topic else f"{pipe.source_name}.{pipe.source_output_name}"
                for _, pipe, topic in topology.pipes_into(algo.full_name or "")
                if pipe.dest_input_name == algo_input.name
            ]
            node.add(
                f"in  {algo_input.name} [{algo_input.input_delivery_type.value}] <- {', '.join(sources) or '(no pipe)'}"
            )
        for output in algo.spec.outputs:
            topic = topology.topics.get(f"{algo.full_name}|{output.name}")
            node.add(
                f"out {output.name} [{output.output_delivery_type.value}] -> {topic.name if topic else '(not piped)'}"
            )
        strategy = plan.strategy.strategy.value if plan.strategy and plan.enabled else "none"
        retry = node.add(f"retries: {strategy}; dead letters -> {plan.dead_letter_topic}")
        for backoff, topic_name in plan.retry_topics.items():
            retry.add(f"after {backoff} -> {topic_name}")


def _connectors(tree: Tree, topology: Topology) -> None:
    for cnode in topology.connectors:
        if cnode.spec is None:
            tree.add("[yellow]DataConnector[/yellow] (dataConnectorRef not resolved: pass its YAML too)")
            continue
        node = tree.add(
            f"[yellow]DataConnector[/yellow] [bold]{cnode.full_name}[/bold]  {cnode.spec.data_connector_type.value}"
            f"  {cnode.spec.connector_class or ''}"
        )
        for key, value in sorted(cnode.options().items()):
            node.add(f"{key} = {value}")


def _hook(tree: Tree, topology: Topology) -> None:
    hooks = topology.spec.event_hook.web_hooks
    inputs = topology.hook_inputs()
    if not hooks and not inputs:
        return
    node = tree.add(f"[green]EventHook[/green]  replicas {topology.spec.event_hook.replicas}")
    for name, topics in sorted(inputs.items()):
        targets = [h for h in hooks if h.pipeline_hook_input_name == name]
        branch = node.add(f"input {name} <- {', '.join(t.name for t in topics)}")
        for hook in targets:
            branch.add(f"{(hook.http_verb or 'POST').upper()} {hook.web_hook_url}")
        if not targets:
            branch.add("(no webhook: messages are not delivered anywhere)")


def _topics(topology: Topology) -> Table:
    table = Table(title="Topics", title_justify="left", show_lines=False)
    table.add_column("topic", overflow="fold")
    table.add_column("partitions", justify="right")
    table.add_column("written by", overflow="fold")
    table.add_column("read by", overflow="fold")
    for topic in sorted(topology.topics.values(), key=lambda t: t.name):
        readers = [
            f"{p.dest_name}.{p.dest_input_name}"
            for p in topology.spec.pipes
            if p.source_name == topic.source_name and p.source_output_name == topic.output_name
        ]
        table.add_row(topic.name, str(topic.partitions), f"{topic.source_name}.{topic.output_name}", "\n".join(readers))
    return table


def _pipes(topology: Topology) -> Table:
    table = Table(title="Pipes", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("from", overflow="fold")
    table.add_column("to", overflow="fold")
    for i, pipe in enumerate(topology.spec.pipes):
        table.add_row(
            str(i),
            f"{pipe.source_name}.{pipe.source_output_name}",
            f"{pipe.dest_name}.{pipe.dest_input_name}",
        )
    return table
