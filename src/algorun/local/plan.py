"""What `algorun run` starts, as data: processes, config files, topics and URLs, computed purely from the
pipeline's topology so it can be tested without starting anything.

One process per endpoint, per algo replica's runner, per long-running algo server (http/grpc executors: one
server per algo, shared by its runner replicas, since its port is fixed by the spec), and one hook runner.
Executable and python algos need no process of their own: the runner spawns or imports them.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from algorun.api import naming
from algorun.api.configs import connector_config, connector_name, endpoint_config, hook_config, runner_config
from algorun.api.enums import ExecutorKind
from algorun.api.topology import AlgoNode, Topology


class Kind(StrEnum):
    ENDPOINT = "endpoint"
    RUNNER = "runner"
    ALGO = "algo"
    HOOK = "hook"


@dataclass
class ProcessSpec:
    """One supervised process."""

    name: str
    kind: Kind
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    """GET answers 2xx once the process is ready."""
    ready_port: int | None = None
    """Without a ready_url: ready once this local TCP port accepts connections (an algo's server)."""
    component: str | None = None
    """The pipeline component it belongs to (an algo's full name, `Endpoint`, `EventHook`)."""


@dataclass
class GroupWatch:
    """A consumer group and the topics it reads: its backlog is what `--until-idle` waits to drain."""

    component: str
    group: str
    topics: list[str]


@dataclass
class ConnectorSpec:
    name: str
    config: dict[str, str]


@dataclass
class LocalPlan:
    processes: list[ProcessSpec]
    config_files: dict[Path, dict[str, Any]]
    topics: dict[str, int]
    """Topic name -> partitions (data, retry and dead-letter topics)."""
    groups: list[GroupWatch]
    dead_letter_topics: dict[str, str]
    """Dead-letter topic -> the component it belongs to."""
    output_topics: dict[str, list[str]]
    """Component -> the topics it writes (for the live view's 'out' column)."""
    endpoint_urls: list[str]
    connectors: list[ConnectorSpec]


class PlanError(Exception):
    """The pipeline cannot run locally as given; the message says what to pass or change."""


@dataclass
class Ports:
    """Where the endpoint listens; other components get free ports from `allocate`."""

    http: int = 18080
    grpc: int = 18282
    metrics: int = 28080
    host: str = "127.0.0.1"


def algo_override_for(node: AlgoNode, overrides: Mapping[str, str]) -> str | None:
    """The `--algo NAME=COMMAND` that applies to `node`: NAME is its full name, owner/name, or name."""
    if node.spec is None:
        return None
    for candidate in (node.full_name or "", f"{node.spec.owner}/{node.spec.name}", node.spec.name):
        if candidate in overrides:
            return overrides[candidate]
    return None


def _component_argv(kind: Kind, config: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "algorun.cli.main", kind.value, "--config", str(config), *extra]


def build_plan(
    topology: Topology,
    *,
    state_dir: Path,
    workdir: Path,
    bus_env: Mapping[str, str],
    allocate: Callable[[], int],
    ports: Ports | None = None,
    algo_overrides: Mapping[str, str] | None = None,
    kafka: bool = False,
) -> LocalPlan:
    """The processes and files that run `topology` on this machine.

    `bus_env` is the environment that tells every component where the data plane is (the local log's URL, or
    the Kafka brokers and security variables). `allocate` hands out free TCP ports.
    """
    ports = ports or Ports()
    overrides = dict(algo_overrides or {})
    unknown = [
        name for name in overrides if not any(algo_override_for(a, {name: ""}) is not None for a in topology.algos)
    ]
    if unknown:
        known = ", ".join(a.full_name or "?" for a in topology.algos)
        raise PlanError(f"--algo {unknown[0]}: no algo by that name in the pipeline; known: {known}")
    configs_dir = state_dir / "configs"
    processes: list[ProcessSpec] = []
    files: dict[Path, dict[str, Any]] = {}
    groups: list[GroupWatch] = []
    topics: dict[str, int] = {t.name: t.partitions for t in topology.topics.values()}
    dead_letters: dict[str, str] = {}
    outputs: dict[str, list[str]] = {}
    env = dict(bus_env)

    if topology.connectors and not kafka:
        names = ", ".join(c.full_name or "?" for c in topology.connectors)
        raise PlanError(
            f"the pipeline has data connectors ({names}); they run on Kafka Connect: pass --kafka HOST:PORT "
            "and --connect URL of a Kafka Connect worker"
        )

    endpoint_urls: list[str] = []
    if topology.spec.endpoint.paths:
        config = endpoint_config(topology).to_json()
        path = configs_dir / "endpoint.json"
        files[path] = config
        extra = [
            *("--http-listen", f"{ports.host}:{ports.http}"),
            *("--grpc-listen", f"{ports.host}:{ports.grpc}"),
            *("--monitoring-listen", f"{ports.host}:{ports.metrics}"),
        ]
        processes.append(
            ProcessSpec(
                name="endpoint",
                kind=Kind.ENDPOINT,
                argv=_component_argv(Kind.ENDPOINT, path, extra),
                cwd=workdir,
                env=env,
                ready_url=f"http://{ports.host}:{ports.http}/ready",
                component="Endpoint",
            )
        )
        endpoint_urls = [
            f"http://{ports.host}:{ports.http}/{topology.owner}/{topology.name}/{p.name}"
            for p in topology.spec.endpoint.paths
        ]
        outputs["Endpoint"] = [p["topic"] for p in config["paths"]]

    for node in topology.algos:
        if node.spec is None or node.full_name is None:
            raise PlanError(f"{node.path}: the algoRef is not resolved; pass the Algo's YAML file after the pipeline")
        rc = runner_config(topology, node)
        plan = topology.retry_plan(node)
        for topic in [*plan.retry_topics.values(), plan.dead_letter_topic]:
            topics.setdefault(topic, 1)
        dead_letters[plan.dead_letter_topic] = node.full_name
        slug = naming.object_name(node.spec.owner, node.spec.name, node.deployment.version, node.deployment.index)
        executor = rc.executor
        override = algo_override_for(node, overrides)
        entry = override or rc.entrypoint
        if executor == ExecutorKind.DELEGATED and not kafka:
            raise PlanError(f"{node.full_name} is Delegated: it talks to Kafka itself, so it needs --kafka HOST:PORT")
        if executor in (ExecutorKind.HTTP, ExecutorKind.GRPC, ExecutorKind.DELEGATED):
            if not entry:
                raise PlanError(
                    f"{node.full_name} has no entrypoint to run on this machine; give one with "
                    f'--algo {node.spec.owner}/{node.spec.name}="COMMAND"'
                )
            algo_env = dict(env) if executor == ExecutorKind.DELEGATED else {}
            if executor == ExecutorKind.DELEGATED:
                for algo_input in rc.inputs:
                    if algo_input.topics:
                        algo_env[f"KAFKA_INPUT_TOPIC_{algo_input.name.upper()}"] = algo_input.topics[0].topic
                for algo_output in rc.outputs:
                    if algo_output.topic:
                        algo_env[f"KAFKA_OUTPUT_TOPIC_{algo_output.name.upper()}"] = algo_output.topic
            processes.append(
                ProcessSpec(
                    name=f"algo {node.full_name}",
                    kind=Kind.ALGO,
                    argv=shlex.split(entry),
                    cwd=workdir,
                    env=algo_env,
                    component=node.full_name,
                    ready_port=_server_port(rc.inputs),
                )
            )
        if executor == ExecutorKind.DELEGATED:
            continue
        config = rc.to_json()
        if override and executor not in (ExecutorKind.HTTP, ExecutorKind.GRPC):
            config["entrypoint"] = override
        path = configs_dir / f"runner-{slug}.json"
        files[path] = config
        for replica in range(max(node.deployment.replicas, 1)):
            health = allocate()
            processes.append(
                ProcessSpec(
                    name=f"runner {node.full_name}" + (f" #{replica}" if node.deployment.replicas > 1 else ""),
                    kind=Kind.RUNNER,
                    argv=_component_argv(Kind.RUNNER, path, ["--health-port", str(health), "--workdir", str(workdir)]),
                    cwd=workdir,
                    env={**env, "INSTANCE_NAME": f"{slug}-{replica}"},
                    ready_url=f"http://127.0.0.1:{health}/ready",
                    component=node.full_name,
                )
            )
        reads = [t.topic for i in rc.inputs for t in i.topics] + list(plan.retry_topics.values())
        groups.append(GroupWatch(node.full_name, rc.consumer_group, sorted(set(reads))))
        outputs[node.full_name] = [o.topic for o in rc.outputs if o.topic]

    if topology.spec.event_hook.web_hooks:
        hc = hook_config(topology)
        path = configs_dir / "hook.json"
        files[path] = hc.to_json()
        topics.setdefault(hc.dead_letter_topic, 1)
        dead_letters[hc.dead_letter_topic] = "EventHook"
        health = allocate()
        processes.append(
            ProcessSpec(
                name="hook",
                kind=Kind.HOOK,
                argv=_component_argv(Kind.HOOK, path, ["--health-port", str(health)]),
                cwd=workdir,
                env=env,
                ready_url=f"http://127.0.0.1:{health}/ready",
                component="EventHook",
            )
        )
        groups.append(GroupWatch("EventHook", hc.consumer_group, sorted({t for ts in hc.inputs.values() for t in ts})))

    connectors = [ConnectorSpec(connector_name(topology, c), _connect_body(topology, c)) for c in topology.connectors]
    return LocalPlan(
        processes=processes,
        config_files=files,
        topics=topics,
        groups=groups,
        dead_letter_topics=dead_letters,
        output_topics=outputs,
        endpoint_urls=endpoint_urls,
        connectors=connectors,
    )


def _server_port(inputs: list[Any]) -> int | None:
    for algo_input in inputs:
        for settings in (algo_input.http, algo_input.grpc):
            if settings is not None and settings.port:
                return int(settings.port)
    return None


def _connect_body(topology: Topology, node: Any) -> dict[str, str]:
    config = connector_config(topology, node)
    config["connector.class"] = node.spec.connector_class or ""
    config["tasks.max"] = str(node.deployment.tasks_max or 1)
    return config
