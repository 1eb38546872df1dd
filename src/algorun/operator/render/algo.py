"""Objects of one algo instance: runner ConfigMap, Deployment, metrics Service and HPA.

Pod layouts by executor:

- http, grpc and others: an `algo-runner` sidecar (runner image, `algorun runner --config`) next to the algo
  container; config at /algo-runner/algo-runner-config.json.
- Executable: the init container `algo-runner-init` copies the self-contained runner build from the runner
  image's /opt/algorun/algo-runner/ into the `algo-runner` emptyDir (/algo-runner); the algo container runs
  /algo-runner/bin/algo-runner with its config at /algo-runner-config/algo-runner-config.json (a separate
  mount, so it does not collide with the emptyDir).
- python: one container running `algorun runner --config` (the version's image if given, else the runner
  image); config at /algo-runner/algo-runner-config.json.
- Delegated: the algo container alone, with the Kafka env (it talks to Kafka itself); no runner, no metrics
  Service.

Names: `{deploymentOwner}-{deploymentName}-{algoOwner}-{algoName}-{index}` (Deployment, HPA), with `-config`
(ConfigMap) and `-metrics` (Service). The version is not in the name and not in the selector, so a version
change is a rolling update of the same Deployment (a selector is immutable), and each instance has a ConfigMap of
its own.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from algorun.api import configs
from algorun.api.enums import ExecutorKind, InputDeliveryType, OutputDeliveryType
from algorun.api.naming import object_name, topic_key
from algorun.api.topology import AlgoNode
from algorun.operator.render import security
from algorun.operator.render.context import RenderContext
from algorun.operator.render.labels import (
    ALGO,
    ALGO_VERSION,
    COMPONENT,
    CREATE_ALGO_SERVICE,
    INDEX,
    PART_OF,
    PIPELINE_DEPLOYMENT,
    common_labels,
    metadata,
    suffixed,
)
from algorun.operator.render.workload import (
    autoscaled,
    health_probe,
    hpa,
    image_of,
    pod_annotations,
    probe,
    resources,
)

RUNNER_PORT = 10080
CONFIG_KEY = "runner-config"
CONFIG_FILE = "algo-runner-config.json"
SIDECAR_CONFIG_DIR = "/algo-runner"
EXECUTABLE_CONFIG_DIR = "/algo-runner-config"
RUNNER_BUILD_SOURCE = "/opt/algorun/algo-runner/"
RUNNER_BUILD_DIR = "/algo-runner"
RUNNER_BINARY = "/algo-runner/bin/algo-runner"


def base_name(ctx: RenderContext, node: AlgoNode) -> str:
    assert node.spec is not None
    return object_name(ctx.owner, ctx.name, node.spec.owner, node.spec.name, node.deployment.index)


def labels(ctx: RenderContext, node: AlgoNode, component: str = "algo") -> dict[str, str]:
    assert node.spec is not None
    return {
        **common_labels(ctx.ident, component),
        ALGO: f"{node.spec.owner}.{node.spec.name}",
        ALGO_VERSION: node.deployment.version,
        INDEX: str(node.deployment.index),
    }


def selector(ctx: RenderContext, node: AlgoNode) -> dict[str, str]:
    full = labels(ctx, node)
    return {k: full[k] for k in (PART_OF, COMPONENT, PIPELINE_DEPLOYMENT, ALGO, INDEX)}


def render_algo(ctx: RenderContext, node: AlgoNode) -> list[dict[str, Any]]:
    assert node.spec is not None
    spec, dep = node.spec, node.deployment
    executor = spec.effective_executor
    name = base_name(ctx, node)
    config_name = suffixed("config", ctx.owner, ctx.name, spec.owner, spec.name, dep.index)
    runner_config = configs.runner_config(ctx.topology, node).to_json()
    data = {CONFIG_KEY: json.dumps(runner_config, indent=2, sort_keys=True)}
    for mount in dep.config_mounts or []:
        data[mount.name] = mount.data
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(ctx.ident, config_name, ctx.ns, labels(ctx, node)),
            "data": data,
        }
    ]
    has_runner = executor != ExecutorKind.DELEGATED
    pod_labels = {**labels(ctx, node), CREATE_ALGO_SERVICE: "true" if has_runner else "false"}
    pod_spec = _pod_spec(ctx, node, executor, config_name)
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(ctx, node)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": 10,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations(ctx.ident.owner_key, data)},
            "spec": pod_spec,
        },
    }
    if not autoscaled(dep.autoscaling):
        deployment_spec["replicas"] = dep.replicas
    objects.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(ctx.ident, name, ctx.ns, pod_labels),
            "spec": deployment_spec,
        }
    )
    if has_runner:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(
                    ctx.ident,
                    suffixed("metrics", ctx.owner, ctx.name, spec.owner, spec.name, dep.index),
                    ctx.ns,
                    labels(ctx, node),
                ),
                "spec": {
                    "selector": selector(ctx, node),
                    "ports": [{"name": "metrics", "port": RUNNER_PORT, "targetPort": RUNNER_PORT, "protocol": "TCP"}],
                },
            }
        )
    if autoscaled(dep.autoscaling):
        assert dep.autoscaling is not None
        meta = metadata(ctx.ident, name, ctx.ns, labels(ctx, node, "algo-hpa"))
        objects.append(hpa(meta, "Deployment", name, dep.autoscaling, dep.replicas))
    return objects


def topic_env(ctx: RenderContext, node: AlgoNode) -> list[dict[str, Any]]:
    """`KAFKA_INPUT_TOPIC_<INPUT>` / `KAFKA_OUTPUT_TOPIC_<OUTPUT>` for KafkaTopic inputs and outputs.

    Inputs match pipes on destName *and* destInputName: two algos may each have an input of the same name.
    """
    assert node.spec is not None and node.full_name is not None
    env: list[dict[str, Any]] = []
    feeds = ctx.topology.pipes_into(node.full_name)
    for algo_input in node.spec.inputs:
        if algo_input.input_delivery_type != InputDeliveryType.KAFKA_TOPIC:
            continue
        topics = [t.name for _, p, t in feeds if p.dest_input_name == algo_input.name and t is not None]
        if topics:
            env.append({"name": f"KAFKA_INPUT_TOPIC_{_env_key(algo_input.name)}", "value": ",".join(topics)})
    for output in node.spec.outputs:
        if output.output_delivery_type != OutputDeliveryType.KAFKA_TOPIC:
            continue
        topic = ctx.topology.topics.get(topic_key(node.full_name, output.name))
        if topic is not None:
            env.append({"name": f"KAFKA_OUTPUT_TOPIC_{_env_key(output.name)}", "value": topic.name})
    return env


def _env_key(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def _pod_spec(ctx: RenderContext, node: AlgoNode, executor: ExecutorKind, config_name: str) -> dict[str, Any]:
    assert node.spec is not None
    spec, dep = node.spec, node.deployment
    version = spec.version(dep.version)
    algo_image, algo_pull = image_of(version.image if version else None, ctx.settings.algorunner_image)
    runner_image, runner_pull = image_of(
        dep.algo_runner_image, ctx.settings.algorunner_image, ctx.settings.algorunner_image_pull_policy
    )
    entry = shlex.split(version.entrypoint) if version and version.entrypoint else []
    config_dir = EXECUTABLE_CONFIG_DIR if executor == ExecutorKind.EXECUTABLE else SIDECAR_CONFIG_DIR
    config_path = f"{config_dir}/{CONFIG_FILE}"
    runner_env = security.data_plane_env(ctx) + topic_env(ctx, node)
    config_mount = {"name": "algo-config", "mountPath": config_dir, "readOnly": True}
    user_mounts = [
        {"name": "algo-config", "mountPath": m.mount_path, "subPath": m.name, "readOnly": True}
        for m in dep.config_mounts or []
    ]
    scratch = [
        {"name": "algorun-input", "mountPath": "/input"},
        {"name": "algorun-output", "mountPath": "/output"},
    ]
    runner_probe = health_probe(RUNNER_PORT)
    runner_port = [{"name": "metrics", "containerPort": RUNNER_PORT, "protocol": "TCP"}]
    algo_container: dict[str, Any] = {"name": object_name(spec.name), "image": algo_image}
    if algo_pull:
        algo_container["imagePullPolicy"] = algo_pull
    containers: list[dict[str, Any]] = []
    init_containers: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = [
        {
            "name": "algo-config",
            "configMap": {
                "name": config_name,
                "defaultMode": 0o444,
                "items": [{"key": CONFIG_KEY, "path": CONFIG_FILE}],
            },
        },
        {"name": "algorun-input", "emptyDir": {}},
        {"name": "algorun-output", "emptyDir": {}},
    ]
    if dep.config_mounts:
        volumes[0]["configMap"]["items"] += [{"key": m.name, "path": m.name} for m in dep.config_mounts]
    volumes += security.secret_volumes(ctx)
    secret_mounts = security.secret_mounts(ctx)
    res = resources(dep.resources)
    if executor == ExecutorKind.EXECUTABLE:
        volumes.append({"name": "algo-runner", "emptyDir": {}})
        init = {
            "name": "algo-runner-init",
            "image": runner_image,
            "command": ["cp", "-R", f"{RUNNER_BUILD_SOURCE}.", RUNNER_BUILD_DIR + "/"],
            "volumeMounts": [{"name": "algo-runner", "mountPath": RUNNER_BUILD_DIR}],
        }
        if runner_pull:
            init["imagePullPolicy"] = runner_pull
        init_containers.append(init)
        algo_container.update(
            command=[RUNNER_BINARY, "--config", config_path],
            env=runner_env,
            ports=runner_port,
            volumeMounts=[
                {"name": "algo-runner", "mountPath": RUNNER_BUILD_DIR},
                config_mount,
                *user_mounts,
                *scratch,
                *secret_mounts,
            ],
        )
        _probes(algo_container, dep.liveness_probe, dep.readiness_probe, runner_probe)
        containers.append(algo_container)
    elif executor == ExecutorKind.PYTHON:
        image, pull = (algo_image, algo_pull) if version and version.image else (runner_image, runner_pull)
        algo_container.update(
            image=image,
            command=["algorun", "runner", "--config", config_path],
            env=runner_env,
            ports=runner_port,
            volumeMounts=[config_mount, *user_mounts, *scratch, *secret_mounts],
        )
        if pull:
            algo_container["imagePullPolicy"] = pull
        else:
            algo_container.pop("imagePullPolicy", None)
        _probes(algo_container, dep.liveness_probe, dep.readiness_probe, runner_probe)
        containers.append(algo_container)
    elif executor == ExecutorKind.DELEGATED:
        _entrypoint(algo_container, entry)
        algo_container.update(env=runner_env, volumeMounts=[config_mount, *user_mounts, *scratch, *secret_mounts])
        _probes(algo_container, dep.liveness_probe, dep.readiness_probe, None)
        containers.append(algo_container)
    else:
        runner: dict[str, Any] = {
            "name": "algo-runner",
            "image": runner_image,
            "command": ["algorun", "runner", "--config", config_path],
            "env": runner_env,
            "ports": runner_port,
            "volumeMounts": [config_mount, *scratch, *secret_mounts],
            "livenessProbe": runner_probe,
            "readinessProbe": runner_probe,
        }
        if runner_pull:
            runner["imagePullPolicy"] = runner_pull
        _entrypoint(algo_container, entry)
        algo_container["volumeMounts"] = [*user_mounts, *scratch]
        _probes(algo_container, dep.liveness_probe, dep.readiness_probe, None)
        containers += [runner, algo_container]
        runner_cpu = worker_cpu(dep.workers, None)
        if runner_cpu:
            runner["resources"] = runner_cpu
    if executor in (ExecutorKind.EXECUTABLE, ExecutorKind.PYTHON):
        res = worker_cpu(dep.workers, res) or res
    if res:
        algo_container["resources"] = res
    pod: dict[str, Any] = {"containers": containers, "volumes": volumes}
    if init_containers:
        pod["initContainers"] = init_containers
    return pod


def worker_cpu(workers: int | None, res: dict[str, Any] | None) -> dict[str, Any] | None:
    """The resources of the container that runs the runner, given `workers` > 1: a CPU request of one core per
    worker when the user set no CPU request or limit (each worker is a process that can use one core, and a
    container without a request gets the smallest CPU share under contention). A CPU request or limit the user gave
    is kept as it is (Kubernetes takes a lone limit as the request too, and a request above the limit is invalid).
    None when nothing changes."""
    given = res or {}
    if not workers or workers <= 1 or "cpu" in given.get("requests", {}) or "cpu" in given.get("limits", {}):
        return None
    out = {k: dict(v) for k, v in (res or {}).items()}
    out["requests"] = {**out.get("requests", {}), "cpu": str(workers)}
    out["requests"] = dict(sorted(out["requests"].items()))
    return out


def _entrypoint(container: dict[str, Any], entry: list[str]) -> None:
    """The version's entrypoint as command and args (quoted words are kept together)."""
    if entry:
        container["command"] = entry[:1]
    if entry[1:]:
        container["args"] = entry[1:]


def _probes(container: dict[str, Any], liveness: Any, readiness: Any, default: dict[str, Any] | None) -> None:
    live = probe(liveness, default)
    ready = probe(readiness, default)
    if live:
        container["livenessProbe"] = live
    if ready:
        container["readinessProbe"] = ready
