"""Semantic validation of a pipeline beyond its types. Every problem is reported at once, with its path.

What is checked: pipe ends and their output/input names exist; algo and connector versions exist; no two
instances share a full name; references resolve (when a resolver is given); topic names are legal Kafka names;
names that end up in Kubernetes labels and object names are valid there; retry strategies are usable;
autoscaling bounds are consistent; required inputs are fed; webhooks are well-formed and fed.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlparse

from algorun.api import naming
from algorun.api.algo import AlgoSpec
from algorun.api.base import AutoScaling, RetryStrategy
from algorun.api.enums import DataConnectorType, ExecutorKind, InputDeliveryType, RetryStrategyKind
from algorun.api.headers import parse_http_headers
from algorun.api.pipeline import ENDPOINT_NAME, EVENT_HOOK_NAME, EndpointAuth, PipelineDeploymentSpec
from algorun.api.problems import PathPart, Problem, Problems, quoted
from algorun.api.topology import Resolver, Topology, build_topology, is_hook_name

_HTTP_VERBS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def validate_spec(spec: PipelineDeploymentSpec, resolver: Resolver | None = None) -> list[Problem]:
    """Every semantic problem of a pipeline spec (paths start at `spec`)."""
    problems = Problems()
    topology = build_topology(spec, resolver, problems)
    _check_identity(spec, problems)
    _check_algos(topology, problems)
    _check_connectors(topology, problems)
    _check_endpoint(topology, problems)
    _check_pipes(topology, problems)
    if not problems.errors:
        # Topic names derive from the identity and component names: with those wrong, they would only echo it.
        _check_topics(topology, problems)
    _check_hooks(topology, problems)
    return problems.items


def _check_identity(spec: PipelineDeploymentSpec, problems: Problems) -> None:
    for field, value in (
        ("deploymentOwner", spec.deployment_owner),
        ("deploymentName", spec.deployment_name),
        ("pipelineOwner", spec.pipeline_owner),
        ("pipelineName", spec.pipeline_name),
    ):
        if value is None:
            continue
        problem = naming.label_value_problem(value) if value else "must not be empty"
        if problem:
            problems.add(["spec", field], problem)
    for field, label in (
        ("deploymentName", f"{spec.deployment_owner}.{spec.deployment_name}"),
        ("pipelineName", f"{spec.effective_pipeline_owner}.{spec.effective_pipeline_name}"),
    ):
        if len(label) > naming.MAX_OBJECT_NAME:
            problems.add(
                ["spec", field],
                f'the label value "{label}" (owner.name) is {len(label)} characters; at most '
                f"{naming.MAX_OBJECT_NAME} fit a Kubernetes label",
            )
    if spec.deployment_namespace is not None and not naming.is_dns_label(spec.deployment_namespace):
        problems.add(["spec", "deploymentNamespace"], f'"{spec.deployment_namespace}" is not a valid namespace name')


def _check_algos(topology: Topology, problems: Problems) -> None:
    names = Counter(node.full_name for node in topology.algos if node.full_name)
    for node in topology.algos:
        path: list[PathPart] = ["spec", "algos", node.position]
        dep = node.deployment
        if node.full_name and names[node.full_name] > 1:
            problems.add(path, f"{node.full_name} appears more than once; give each instance its own index")
        _check_autoscaling(dep.autoscaling, [*path, "autoscaling"], problems)
        _check_retry(dep.retry_strategy, [*path, "retryStrategy"], problems)
        mounts = Counter(m.name for m in dep.config_mounts or [])
        for j, mount in enumerate(dep.config_mounts or []):
            if mounts[mount.name] > 1:
                problems.add([*path, "configMounts", j, "name"], f'"{mount.name}" is used by more than one mount')
            if not mount.mount_path.startswith("/"):
                problems.add([*path, "configMounts", j, "mountPath"], "must be an absolute path")
        spec = node.spec
        if spec is None:
            continue
        spec_path: list[PathPart] = [*path, "spec"] if dep.spec is not None else [*path, "algoRef"]
        if spec.version(dep.version) is None:
            known = quoted(v.version_tag for v in spec.versions)
            problems.add(
                [*path, "version"],
                f'algo {spec.owner}/{spec.name} has no version "{dep.version}"; known: {known}',
            )
        for field, value in (("owner", spec.owner), ("name", spec.name)):
            problem = naming.label_value_problem(value) if value else "must not be empty"
            if problem:
                problems.add([*spec_path, field], problem)
        _check_algo_spec(spec, spec_path, dep.version, problems)
        declared = Counter(t.output_name for t in dep.topics)
        for j, topic in enumerate(dep.topics):
            if not topic.output_name:
                problems.add([*path, "topics", j, "outputName"], "required field is missing")
            elif spec.output(topic.output_name) is None:
                known = quoted(o.name for o in spec.outputs) or "none"
                problems.add(
                    [*path, "topics", j, "outputName"],
                    f'algo {spec.owner}/{spec.name} has no output "{topic.output_name}"; known: {known}',
                )
            elif declared[topic.output_name] > 1:
                problems.add(
                    [*path, "topics", j, "outputName"],
                    f'output "{topic.output_name}" has more than one topic',
                )
        param_names = {p.name for p in spec.parameters or []}
        for j, param in enumerate(dep.parameters or []):
            if param_names and param.name not in param_names:
                problems.warn(
                    [*path, "parameters", j, "name"],
                    f'algo {spec.owner}/{spec.name} declares no parameter "{param.name}"; it is passed anyway',
                )
        fed = {pipe.dest_input_name for _, pipe, _ in topology.pipes_into(node.full_name or "")}
        for j, algo_input in enumerate(spec.inputs):
            if algo_input.is_required and algo_input.name not in fed:
                problems.add(
                    [*spec_path, "inputs", j],
                    f'input "{algo_input.name}" of {node.full_name} is required but no pipe feeds it',
                )


def _check_algo_spec(spec: AlgoSpec, path: list[PathPart], version: str, problems: Problems) -> None:
    inputs = Counter(i.name for i in spec.inputs)
    outputs = Counter(o.name for o in spec.outputs)
    for j, algo_input in enumerate(spec.inputs):
        if inputs[algo_input.name] > 1:
            problems.add([*path, "inputs", j, "name"], f'input "{algo_input.name}" is declared more than once')
        kind = algo_input.input_delivery_type
        if kind in (InputDeliveryType.HTTP, InputDeliveryType.HTTPS):
            if algo_input.http is None or algo_input.http.port is None:
                problems.add([*path, "inputs", j, "http", "port"], f"an {kind.value} input needs the algo's port")
            elif algo_input.http.verb and algo_input.http.verb.upper() not in _HTTP_VERBS:
                problems.add([*path, "inputs", j, "http", "verb"], f'"{algo_input.http.verb}" is not an HTTP method')
        if kind == InputDeliveryType.GRPC and (algo_input.grpc is None or algo_input.grpc.port is None):
            problems.add([*path, "inputs", j, "grpc", "port"], "a Grpc input needs the algo's port")
        if kind == InputDeliveryType.ENVIRONMENT_VARIABLE and not algo_input.environment_variable:
            problems.add(
                [*path, "inputs", j, "environmentVariable"],
                "an EnvironmentVariable input needs the variable's name",
            )
        if kind in (InputDeliveryType.FILE_PARAMETER, InputDeliveryType.FILE_ARRAY_PARAMETER) and not (
            algo_input.file_parameter and algo_input.file_parameter.parameter
        ):
            problems.add(
                [*path, "inputs", j, "fileParameter", "parameter"],
                f"a {kind.value} input needs the parameter name",
            )
    for j, output in enumerate(spec.outputs):
        if outputs[output.name] > 1:
            problems.add([*path, "outputs", j, "name"], f'output "{output.name}" is declared more than once')
    chosen = spec.version(version)
    if spec.effective_executor == ExecutorKind.PYTHON and chosen is not None:
        entry = (chosen.entrypoint or "").strip()
        module, sep, func = entry.partition(":")
        if not sep or not module or not func.isidentifier() or " " in entry:
            index = spec.versions.index(chosen)
            problems.add(
                [*path, "versions", index, "entrypoint"],
                f'the python executor needs an entrypoint "module:function", got "{entry}"',
            )


def _check_connectors(topology: Topology, problems: Problems) -> None:
    names = Counter(c.full_name for c in topology.connectors if c.full_name)
    for cnode in topology.connectors:
        path: list[PathPart] = ["spec", "dataConnectors", cnode.position]
        if cnode.full_name and names[cnode.full_name] > 1:
            problems.add(path, f"{cnode.full_name} appears more than once; give each instance its own index")
        spec = cnode.spec
        if spec is None:
            continue
        if spec.version(cnode.deployment.version) is None:
            known = quoted(v.version_tag for v in spec.versions)
            problems.add(
                [*path, "version"],
                f'data connector {spec.name} has no version "{cnode.deployment.version}"; known: {known}',
            )
        if not spec.connector_class:
            problems.add(
                [*path, "spec", "connectorClass"] if cnode.deployment.spec else path,
                "a connector needs connectorClass",
            )
        problem = naming.label_value_problem(spec.name) if spec.name else "must not be empty"
        if problem:
            problems.add([*path, "spec", "name"], problem)
        if spec.data_connector_type == DataConnectorType.SINK and not topology.pipes_into(cnode.full_name or ""):
            problems.add(path, f"sink connector {cnode.full_name} has no pipe feeding it")
        for j, topic in enumerate(cnode.deployment.topics):
            if not topic.output_name:
                problems.add([*path, "topics", j, "outputName"], "required field is missing")


def _check_endpoint_auth(auth: EndpointAuth, problems: Problems) -> None:
    where: list[PathPart] = ["spec", "endpoint", "auth"]
    if not naming.is_dns_subdomain(auth.secret_name):
        problems.add(
            [*where, "secretName"],
            f'"{auth.secret_name}" is not a valid Secret name (at most 253 lower-case letters, digits, "-" and ".", '
            "in dot-separated parts that start and end with a letter or digit)",
        )
    for field, key in (("bearerTokensKey", auth.bearer_tokens_key), ("apiKeysKey", auth.api_keys_key)):
        if not naming.is_secret_key(key):
            problems.add([*where, field], f'"{key}" is not a valid Secret key (letters, digits, "-", "_" and ".")')


def _check_endpoint(topology: Topology, problems: Problems) -> None:
    endpoint = topology.spec.endpoint
    names = Counter(p.name for p in endpoint.paths)
    for j, path in enumerate(endpoint.paths):
        where: list[PathPart] = ["spec", "endpoint", "paths", j]
        if names[path.name] > 1:
            problems.add([*where, "name"], f'path "{path.name}" is declared more than once')
        if not path.name or "/" in path.name or path.name != path.name.strip():
            problems.add([*where, "name"], f'"{path.name}" is not a usable URL path segment')
    if sum(1 for p in endpoint.paths if p.is_default) > 1:
        problems.add(["spec", "endpoint", "paths"], "more than one path has isDefault: true")
    if endpoint.auth is not None:
        _check_endpoint_auth(endpoint.auth, problems)
    _check_autoscaling(endpoint.autoscaling, ["spec", "endpoint", "autoscaling"], problems)
    _check_autoscaling(topology.spec.event_hook.autoscaling, ["spec", "eventHook", "autoscaling"], problems)


def _check_pipes(topology: Topology, problems: Problems) -> None:
    spec = topology.spec
    unresolved_algos = [a for a in topology.algos if a.spec is None]
    unresolved_connectors = [c for c in topology.connectors if c.spec is None]
    known = ", ".join(topology.component_names())

    def unresolved_match(name: str) -> bool:
        parsed = naming.parse_full_name(name)
        if parsed is None:
            return False
        _, _, version, index = parsed
        versions = [(a.deployment.version, a.deployment.index) for a in unresolved_algos]
        versions += [(c.deployment.version, c.deployment.index) for c in unresolved_connectors]
        return (version, index) in versions

    for i, pipe in enumerate(spec.pipes):
        path: list[PathPart] = ["spec", "pipes", i]
        source = pipe.source_name
        if source == ENDPOINT_NAME:
            if spec.endpoint.path(pipe.source_output_name) is None:
                paths = quoted(p.name for p in spec.endpoint.paths) or "none"
                problems.add(
                    [*path, "sourceOutputName"],
                    f'the endpoint has no path "{pipe.source_output_name}"; known: {paths}',
                )
        elif (node := topology.algo(source)) is not None and node.spec is not None:
            if node.spec.output(pipe.source_output_name) is None:
                outs = quoted(o.name for o in node.spec.outputs) or "none"
                problems.add(
                    [*path, "sourceOutputName"],
                    f'{source} has no output "{pipe.source_output_name}"; known: {outs}',
                )
        elif (cnode := topology.connector(source)) is not None and cnode.spec is not None:
            if cnode.spec.data_connector_type != DataConnectorType.SOURCE:
                problems.add([*path, "sourceName"], f"{source} is a Sink connector; only Source connectors produce")
            elif not any(t.output_name == pipe.source_output_name for t in cnode.deployment.topics):
                outs = quoted(t.output_name for t in cnode.deployment.topics) or "none"
                problems.add(
                    [*path, "sourceOutputName"],
                    f'{source} declares no topic for output "{pipe.source_output_name}"; known: {outs}',
                )
        elif not unresolved_match(source):
            problems.add([*path, "sourceName"], f'no component "{source}"; known: {known}')
        dest = pipe.dest_name
        if is_hook_name(pipe) or dest == EVENT_HOOK_NAME:
            pass
        elif (node := topology.algo(dest)) is not None and node.spec is not None:
            if node.spec.input(pipe.dest_input_name) is None:
                ins = quoted(x.name for x in node.spec.inputs) or "none"
                problems.add([*path, "destInputName"], f'{dest} has no input "{pipe.dest_input_name}"; known: {ins}')
        elif (cnode := topology.connector(dest)) is not None and cnode.spec is not None:
            if cnode.spec.data_connector_type != DataConnectorType.SINK:
                problems.add([*path, "destName"], f"{dest} is a Source connector; only Sink connectors consume")
        elif dest == ENDPOINT_NAME:
            problems.add([*path, "destName"], "the endpoint only produces; it cannot be a pipe's destination")
        elif not unresolved_match(dest):
            problems.add([*path, "destName"], f'no component "{dest}"; known: {known}')
        if source == dest:
            problems.add(path, f"a pipe from {source} to itself would loop forever")


def _check_topics(topology: Topology, problems: Problems) -> None:
    seen: dict[str, str] = {}
    for topic in topology.topics.values():
        where = topic.declared_at or f"the default topic of {topic.key}"
        problem = naming.kafka_topic_problem(topic.name)
        path = f"{topic.declared_at}.topicName" if topic.declared_at else "spec.pipes"
        if problem:
            problems.items.append(Problem(path, problem))
        if topic.name in seen and seen[topic.name] != topic.key:
            problems.items.append(
                Problem(
                    path,
                    f'topic "{topic.name}" is also written by {seen[topic.name]}; give {where} its own',
                    "warning",
                )
            )
        seen.setdefault(topic.name, topic.key)
    for node in topology.algos:
        plan = topology.retry_plan(node)
        for name in [*plan.retry_topics.values(), plan.dead_letter_topic]:
            problem = naming.kafka_topic_problem(name)
            if problem:
                problems.add(["spec", "algos", node.position, "retryStrategy"], problem)


def _check_hooks(topology: Topology, problems: Problems) -> None:
    """Webhooks are well-formed and each one's input is fed. An input piped only from a source that has no topic
    (an unresolved reference, an unknown component, a sink) is not judged: that pipe's source is reported where
    it is wrong, and saying "no pipe feeds" it would be false."""
    fed = set(topology.hook_inputs())
    undecided = {pipe.dest_input_name for _, pipe, topic in topology.pipes_into(EVENT_HOOK_NAME) if topic is None}
    for j, hook in enumerate(topology.spec.event_hook.web_hooks):
        path: list[PathPart] = ["spec", "eventHook", "webHooks", j]
        url = urlparse(hook.web_hook_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            problems.add([*path, "webHookUrl"], f'"{hook.web_hook_url}" is not an http(s) URL')
        if hook.http_verb and hook.http_verb.upper() not in _HTTP_VERBS:
            problems.add([*path, "httpVerb"], f'"{hook.http_verb}" is not an HTTP method')
        if hook.http_headers:
            try:
                parse_http_headers(hook.http_headers)
            except ValueError as exc:
                problems.add([*path, "httpHeaders"], str(exc))
        if hook.pipeline_hook_input_name not in fed | undecided:
            known = quoted(x for x in sorted(fed)) or "none"
            problems.add(
                [*path, "pipelineHookInputName"],
                f'no pipe feeds event hook input "{hook.pipeline_hook_input_name}"; fed inputs: {known}',
            )


def _check_autoscaling(autoscaling: AutoScaling | None, path: list[PathPart], problems: Problems) -> None:
    if autoscaling is None or not autoscaling.enabled:
        return
    if autoscaling.max_replicas is None:
        problems.add([*path, "maxReplicas"], "autoscaling is enabled but maxReplicas is not set")
    elif autoscaling.max_replicas < autoscaling.min_replicas:
        problems.add(
            [*path, "maxReplicas"],
            f"maxReplicas ({autoscaling.max_replicas}) is less than minReplicas ({autoscaling.min_replicas})",
        )


def _check_retry(strategy: RetryStrategy | None, path: list[PathPart], problems: Problems) -> None:
    if strategy is None:
        return
    if strategy.strategy == RetryStrategyKind.RETRY_TOPICS and not strategy.steps:
        problems.add([*path, "steps"], "the RetryTopics strategy needs at least one step")
    if strategy.strategy in (RetryStrategyKind.STATEFUL_ORDERED, RetryStrategyKind.STATEFUL_UNORDERED):
        problems.warn(
            [*path, "strategy"],
            f"{strategy.strategy.value} is not implemented by the runner; it retries as Simple",
        )
    indexes = [s.index for s in strategy.steps if s.index is not None]
    if len(indexes) != len(set(indexes)):
        problems.add([*path, "steps"], "two steps have the same index")
