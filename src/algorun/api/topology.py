"""The resolved pipeline: components with their specs, every topic with its final name and partitions, and what
each consumer reads. Validation, `algorun describe`, component configs, the operator's render and local mode all
read a pipeline through this one view, so they cannot disagree about a name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from algorun.api import naming
from algorun.api.algo import AlgoSpec
from algorun.api.base import CustomResourceRef, RetryStrategy, TopicConfig
from algorun.api.dataconnector import DataConnectorSpec
from algorun.api.enums import ComponentType, DataConnectorType, RetryStrategyKind
from algorun.api.pipeline import (
    ENDPOINT_NAME,
    EVENT_HOOK_NAME,
    AlgoDeployment,
    DataConnectorDeployment,
    Pipe,
    PipelineDeploymentSpec,
)
from algorun.api.problems import PathPart, Problems
from algorun.api.resources import Algo, DataConnector
from algorun.api.units import parse_duration


class Resolver(Protocol):
    """Finds the cluster-scoped templates that `algoRef` and `dataConnectorRef` name."""

    def algo(self, ref: CustomResourceRef) -> AlgoSpec | None: ...

    def data_connector(self, ref: CustomResourceRef) -> DataConnectorSpec | None: ...


def _matches(metadata_name: str, labels: dict[str, str], ref: CustomResourceRef) -> bool:
    if ref.name and metadata_name != ref.name:
        return False
    return all(labels.get(k) == v for k, v in (ref.match_labels or {}).items())


@dataclass
class Catalog:
    """A Resolver over templates given as objects (local files, or a list read from the API server).

    A reference matches by name and/or labels; when several templates match, the first by name is taken, so the
    choice is deterministic.
    `documents` says the templates are the YAML documents a user gave on the command line: a reference that
    matches none of them is then reported as missing from those documents, with how to give it.
    """

    algos: list[Algo] = field(default_factory=list)
    connectors: list[DataConnector] = field(default_factory=list)
    documents: bool = False

    def missing(self, kind: str, ref: CustomResourceRef) -> str:
        """The problem reported at a reference to a `kind` template that matches none of this catalog's."""
        if not self.documents:
            return f"no {kind} matches {describe_ref(ref)}"
        example = "algo.yaml" if kind == "Algo" else "connector.yaml"
        what = "algo" if kind == "Algo" else "connector"
        return (
            f"no {kind} with {describe_ref(ref)} among the given documents; give its YAML file too "
            f"(for example: pipeline.yaml {example}), or the {what} inline as spec"
        )

    def algo(self, ref: CustomResourceRef) -> AlgoSpec | None:
        found = sorted((a for a in self.algos if _matches(a.name, a.labels, ref)), key=lambda a: a.name)
        return found[0].spec if found else None

    def data_connector(self, ref: CustomResourceRef) -> DataConnectorSpec | None:
        found = sorted((c for c in self.connectors if _matches(c.name, c.labels, ref)), key=lambda c: c.name)
        return found[0].spec if found else None


def describe_ref(ref: CustomResourceRef) -> str:
    parts = []
    if ref.name:
        parts.append(f'name "{ref.name}"')
    if ref.match_labels:
        parts.append("labels " + ", ".join(f"{k}={v}" for k, v in sorted(ref.match_labels.items())))
    return " and ".join(parts) or "nothing (empty reference)"


@dataclass
class AlgoNode:
    """One algo instance with its resolved spec (None when its algoRef could not be resolved)."""

    position: int
    deployment: AlgoDeployment
    spec: AlgoSpec | None

    @property
    def path(self) -> str:
        return f"spec.algos[{self.position}]"

    @property
    def full_name(self) -> str | None:
        if self.spec is None:
            return None
        return naming.algo_full_name(self.spec.owner, self.spec.name, self.deployment.version, self.deployment.index)


@dataclass
class ConnectorNode:
    """A data connector instance of the pipeline, with its resolved template (None when none matches)."""

    position: int
    deployment: DataConnectorDeployment
    spec: DataConnectorSpec | None

    @property
    def path(self) -> str:
        return f"spec.dataConnectors[{self.position}]"

    @property
    def full_name(self) -> str | None:
        if self.spec is None:
            return None
        return naming.connector_full_name(self.spec.name, self.deployment.version, self.deployment.index)

    def options(self) -> dict[str, str]:
        """The connector's configuration: the template's options, overridden key by key by the deployment's."""
        merged = dict(self.spec.options or {}) if self.spec else {}
        merged.update(self.deployment.options or {})
        return merged


@dataclass
class TopicPlan:
    """A data topic: who writes it, its resolved name and its partition count."""

    key: str
    source_name: str
    output_name: str
    name: str
    partitions: int
    replication_factor: int | None
    params: dict[str, str]
    config: TopicConfig
    declared_at: str | None
    """Path of the declaring `topics[]`/`paths[].topic` entry; None for a default topic."""


@dataclass
class RetryPlan:
    """How one algo instance retries: its strategy, the retry topic of each step and its dead-letter topic."""

    enabled: bool
    strategy: RetryStrategy | None
    retry_topics: dict[str, str]
    """Backoff duration -> retry topic (RetryTopics only)."""
    dead_letter_topic: str


@dataclass
class Topology:
    """A pipeline resolved: its algo and connector instances with their templates, and every topic planned."""

    spec: PipelineDeploymentSpec
    algos: list[AlgoNode]
    connectors: list[ConnectorNode]
    topics: dict[str, TopicPlan]

    @property
    def owner(self) -> str:
        return self.spec.deployment_owner

    @property
    def name(self) -> str:
        return self.spec.deployment_name

    def algo(self, full_name: str) -> AlgoNode | None:
        return next((a for a in self.algos if a.full_name == full_name), None)

    def connector(self, full_name: str) -> ConnectorNode | None:
        return next((c for c in self.connectors if c.full_name == full_name), None)

    def component_names(self) -> list[str]:
        names = [ENDPOINT_NAME] if self.spec.endpoint.paths else []
        names += [a.full_name for a in self.algos if a.full_name]
        names += [c.full_name for c in self.connectors if c.full_name]
        return [*names, EVENT_HOOK_NAME]

    def pipes_into(self, dest_name: str) -> list[tuple[int, Pipe, TopicPlan | None]]:
        """The pipes that feed `dest_name`, with the topic each one reads."""
        return [
            (i, pipe, self.topics.get(naming.topic_key(pipe.source_name, pipe.source_output_name)))
            for i, pipe in enumerate(self.spec.pipes)
            if pipe.dest_name == dest_name or (dest_name == EVENT_HOOK_NAME and is_hook_name(pipe))
        ]

    def hook_inputs(self) -> dict[str, list[TopicPlan]]:
        """Event-hook input name -> the topics piped into it."""
        inputs: dict[str, list[TopicPlan]] = {}
        for _, pipe, topic in self.pipes_into(EVENT_HOOK_NAME):
            if topic is not None:
                inputs.setdefault(pipe.dest_input_name, []).append(topic)
        return inputs

    def retry_plan(self, node: AlgoNode) -> RetryPlan:
        dep = node.deployment
        spec = node.spec
        algo_name = spec.name if spec else "unresolved"
        strategy = dep.retry_strategy
        enabled = dep.retry_enabled if dep.retry_enabled is not None else strategy is not None
        strategies = [strategy] if strategy else []
        for _, _, topic in self.pipes_into(node.full_name or ""):
            if topic and topic.config.override_retry_strategy and topic.config.retry_strategy:
                strategies.append(topic.config.retry_strategy)
        retry_topics: dict[str, str] = {}
        if enabled:
            for s in strategies:
                if s.strategy == RetryStrategyKind.RETRY_TOPICS:
                    for step in s.steps:
                        retry_topics.setdefault(
                            step.backoff_duration,
                            naming.retry_topic(self.owner, self.name, algo_name, dep.index, step.backoff_duration),
                        )
        suffix = strategy.dead_letter_suffix if strategy else None
        dlq = naming.dead_letter_topic(self.owner, self.name, algo_name, dep.index, suffix)
        return RetryPlan(enabled=enabled, strategy=strategy, retry_topics=retry_topics, dead_letter_topic=dlq)

    def hook_dead_letter_topic(self) -> str | None:
        return naming.hook_dead_letter_topic(self.owner, self.name) if self.spec.event_hook.web_hooks else None

    def all_topic_names(self) -> list[str]:
        """Every topic the pipeline uses: data, retry and dead-letter topics (for KafkaTopics and ACLs)."""
        names = {t.name for t in self.topics.values()}
        for node in self.algos:
            plan = self.retry_plan(node)
            names.update(plan.retry_topics.values())
            names.add(plan.dead_letter_topic)
        hook_dlq = self.hook_dead_letter_topic()
        if hook_dlq:
            names.add(hook_dlq)
        return sorted(names)


def is_hook_name(pipe: Pipe) -> bool:
    """Whether a pipe feeds the event hook: a destination named `hook` or `EventHook` (any case) counts."""
    return pipe.dest_component_type == ComponentType.EVENT_HOOK or pipe.dest_name.lower() in (
        "hook",
        "eventhook",
    )


def build_topology(
    spec: PipelineDeploymentSpec, resolver: Resolver | None = None, problems: Problems | None = None
) -> Topology:
    """Resolve references and topics. Resolution problems are added to `problems` (when given)."""
    problems = problems if problems is not None else Problems()
    algos = [AlgoNode(i, dep, _resolve_algo(i, dep, resolver, problems)) for i, dep in enumerate(spec.algos)]
    connectors = [
        ConnectorNode(i, dep, _resolve_connector(i, dep, resolver, problems))
        for i, dep in enumerate(spec.data_connectors)
    ]
    topology = Topology(spec=spec, algos=algos, connectors=connectors, topics={})
    _plan_topics(topology)
    return topology


def _resolve_algo(i: int, dep: AlgoDeployment, resolver: Resolver | None, problems: Problems) -> AlgoSpec | None:
    lookup = resolver.algo if resolver is not None else None
    return _resolve(["spec", "algos", i], dep.spec, dep.algo_ref, lookup, _ALGO_REF, _explainer(resolver), problems)


def _resolve_connector(
    i: int, dep: DataConnectorDeployment, resolver: Resolver | None, problems: Problems
) -> DataConnectorSpec | None:
    lookup = resolver.data_connector if resolver is not None else None
    path: list[PathPart] = ["spec", "dataConnectors", i]
    return _resolve(path, dep.spec, dep.data_connector_ref, lookup, _CONNECTOR_REF, _explainer(resolver), problems)


def _explainer(resolver: Resolver | None) -> Callable[[str, CustomResourceRef], str]:
    """How an unmatched reference is worded: by the catalog that knows where its templates came from."""
    if isinstance(resolver, Catalog):
        return resolver.missing
    return lambda kind, ref: f"no {kind} matches {describe_ref(ref)}"


@dataclass(frozen=True)
class _RefKind:
    """How a deployment entry names its template, for the problems `_resolve` reports."""

    field: str  # the reference's field name in the spec
    kind: str  # the template's kind
    needs: str  # the problem when the entry gives neither


_ALGO_REF = _RefKind("algoRef", "Algo", "needs algoRef (a reference to an Algo) or spec (an inline algo)")
_CONNECTOR_REF = _RefKind(
    "dataConnectorRef", "DataConnector", "needs dataConnectorRef (a reference to a DataConnector) or spec (inline)"
)
_Spec = TypeVar("_Spec")


def _resolve(
    path: list[PathPart],
    inline: _Spec | None,
    ref: CustomResourceRef | None,
    lookup: Callable[[CustomResourceRef], _Spec | None] | None,
    how: _RefKind,
    explain: Callable[[str, CustomResourceRef], str],
    problems: Problems,
) -> _Spec | None:
    """A deployment entry's spec: the inline one, else the template its reference names. Giving both, or neither,
    and a reference that matches nothing are problems at `path`. Without a resolver (`lookup` None: validating
    a spec alone) a reference resolves to nothing, silently."""
    if ref is not None and inline is not None:
        problems.add(path, f"give either {how.field} or spec, not both")
        return inline
    if inline is not None:
        return inline
    if ref is None:
        problems.add(path, how.needs)
        return None
    if lookup is None:
        return None
    found = lookup(ref)
    if found is None:
        problems.add([*path, how.field], explain(how.kind, ref))
    return found


def _declared_topics(topology: Topology) -> Iterable[tuple[str, str, str, TopicConfig, str]]:
    """(source name, output name, default topic name, config, path) of every declared topic."""
    spec = topology.spec
    o, n = spec.deployment_owner, spec.deployment_name
    for i, path in enumerate(spec.endpoint.paths):
        config = path.topic or TopicConfig()
        default = naming.default_endpoint_topic(o, n, path.name)
        yield ENDPOINT_NAME, path.name, default, config, f"spec.endpoint.paths[{i}].topic"
    for node in topology.algos:
        if node.spec is None:
            continue
        for j, config in enumerate(node.deployment.topics):
            output = config.output_name or ""
            default = naming.default_output_topic(o, n, node.spec.name, node.deployment.index, output)
            yield node.full_name or "", output, default, config, f"{node.path}.topics[{j}]"
    for cnode in topology.connectors:
        if cnode.spec is None:
            continue
        for j, config in enumerate(cnode.deployment.topics):
            output = config.output_name or ""
            default = naming.default_output_topic(o, n, cnode.spec.name, cnode.deployment.index, output)
            yield cnode.full_name or "", output, default, config, f"{cnode.path}.topics[{j}]"


def _plan_topics(topology: Topology) -> None:
    spec = topology.spec
    o, n = spec.deployment_owner, spec.deployment_name
    entries: list[tuple[str, str, str, TopicConfig, str | None]] = list(_declared_topics(topology))
    declared = {naming.topic_key(src, out) for src, out, *_ in entries}
    # Outputs that are piped somewhere (or written because writeAllOutputs) but have no declared topic get
    # the default one.
    for pipe in spec.pipes:
        key = naming.topic_key(pipe.source_name, pipe.source_output_name)
        if key in declared:
            continue
        default = _default_topic_for(topology, pipe.source_name, pipe.source_output_name)
        if default is not None:
            entries.append((pipe.source_name, pipe.source_output_name, default, TopicConfig(), None))
            declared.add(key)
    for node in topology.algos:
        if node.spec is None or not node.deployment.write_all_outputs:
            continue
        for algo_output in node.spec.outputs:
            key = naming.topic_key(node.full_name or "", algo_output.name)
            if key not in declared:
                default = naming.default_output_topic(o, n, node.spec.name, node.deployment.index, algo_output.name)
                entries.append((node.full_name or "", algo_output.name, default, TopicConfig(), None))
                declared.add(key)
    for source, output, default, config, path in entries:
        key = naming.topic_key(source, output)
        if key in topology.topics:
            continue  # a duplicate declaration; validation reports it
        name = naming.resolve_topic_template(config.topic_name, o, n) if config.topic_name else default
        topology.topics[key] = TopicPlan(
            key=key,
            source_name=source,
            output_name=output,
            name=name,
            partitions=_partitions(topology, source, output, config),
            replication_factor=config.replication_factor,
            params={p.name: p.value or "" for p in config.topic_params or []},
            config=config,
            declared_at=path,
        )


def _default_topic_for(topology: Topology, source: str, output: str) -> str | None:
    o, n = topology.owner, topology.name
    if source == ENDPOINT_NAME:
        return naming.default_endpoint_topic(o, n, output)
    node = topology.algo(source)
    if node is not None and node.spec is not None:
        return naming.default_output_topic(o, n, node.spec.name, node.deployment.index, output)
    cnode = topology.connector(source)
    if cnode is not None and cnode.spec is not None and cnode.spec.data_connector_type == DataConnectorType.SOURCE:
        return naming.default_output_topic(o, n, cnode.spec.name, cnode.deployment.index, output)
    return None


def _capacity(replicas: int, autoscaling: object | None) -> int:
    max_replicas = getattr(autoscaling, "max_replicas", None) if autoscaling is not None else None
    return max(replicas, max_replicas or 0)


def _partitions(topology: Topology, source: str, output: str, config: TopicConfig) -> int:
    if not config.auto_partition:
        return config.partitions or 1
    capacities: list[int] = []
    for pipe in topology.spec.pipes:
        if pipe.source_name != source or pipe.source_output_name != output:
            continue
        for node in topology.algos:
            if node.full_name == pipe.dest_name:
                capacities.append(_capacity(node.deployment.replicas, node.deployment.autoscaling))
        for cnode in topology.connectors:
            if cnode.full_name == pipe.dest_name:
                capacities.append(_capacity(cnode.deployment.replicas, cnode.deployment.autoscaling))
        if is_hook_name(pipe):
            hook = topology.spec.event_hook
            capacities.append(_capacity(hook.replicas, hook.autoscaling))
    return naming.auto_partitions(capacities)


def backoff_seconds(duration: str) -> float:
    """Seconds of a retry step's backoff (validated on load, so this does not fail)."""
    return parse_duration(duration)
