"""Pipelines on Kubernetes as the console sees them, with the user's own credentials (like `kubectl proxy`).

Everything goes through the API server: the PipelineDeployments the user may read (their spec gives the graph,
their status the states, replicas and pods), and the components' /metrics pages through the API server's
service proxy (the Services the operator labels with the pipeline and a port named `metrics`). Nothing runs in
the cluster for the console. What the user's RBAC refuses is said as such: a 403 from the API server becomes
"your credentials may not ..." in the page. Replay runs `algorun replay` as a Job in the pipeline's namespace
(the runner's own pod template, so it has the runner's config and Kafka credentials); the console first asks the
API server whether the user may create Jobs there (a SelfSubjectAccessReview) and refuses with that reason.

Dead letters live in Kafka, which the user's machine does not reach: the panel says so and names the topic.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import httpx2 as httpx

from algorun.api.configs import RunnerConfig, runner_config
from algorun.api.resources import Algo, PipelineDeployment
from algorun.api.status import ComponentStatus, PipelineDeploymentStatus, PodStatus
from algorun.api.topology import AlgoNode, Catalog, Topology, build_topology
from algorun.console.figures import DEFAULT_INTERVAL, EdgeSample, NodeSample, Poller, Sample
from algorun.console.graph import ENDPOINT, EVENT_HOOK, Graph, Node, build_graph
from algorun.console.metrics import counters
from algorun.console.source import ActionRefused

PDS = "/apis/algo.run/v1beta1"
_COMPONENT = "app.kubernetes.io/component"
_PIPELINE_DEPLOYMENT = "algo.run/pipeline-deployment"
_ALGO = "algo.run/algo"
_INDEX = "algo.run/index"


def refused(response: httpx.Response, doing: str) -> ActionRefused:
    """An API server answer that was not 2xx, as the sentence the page shows."""
    if response.status_code in (401, 403):
        return ActionRefused(f"your credentials may not {doing} (the API server answered {response.status_code})", 403)
    try:
        said = str(response.json().get("message") or response.text)
    except ValueError:
        said = response.text
    return ActionRefused(f"{doing}: the API server answered {response.status_code}: {said[:300]}", 502)


async def discover(http: httpx.AsyncClient, namespace: str | None) -> list[KubeSource]:
    """A source per PipelineDeployment the user may list (in `namespace`, or in every namespace)."""
    path = f"{PDS}/namespaces/{namespace}/pipelinedeployments" if namespace else f"{PDS}/pipelinedeployments"
    response = await http.get(path)
    if response.status_code != 200:
        raise refused(response, f"list PipelineDeployments {'in ' + namespace if namespace else 'in every namespace'}")
    algos: list[Algo] = []
    listed = await http.get(f"{PDS}/algos")
    if listed.status_code == 200:
        algos = [Algo.model_validate(item) for item in listed.json().get("items", [])]
    sources = []
    for item in response.json().get("items", []):
        pd = PipelineDeployment.model_validate(item)
        topology = build_topology(pd.spec, Catalog(algos=algos))
        sources.append(KubeSource(http, item["metadata"]["namespace"], item["metadata"]["name"], topology))
    return sources


class KubeSource:
    """One PipelineDeployment seen through the API server with the user's credentials: its graph from the spec,
    its figures from the status and the components' metrics (module docstring)."""

    def __init__(
        self, http: httpx.AsyncClient, namespace: str, name: str, topology: Topology, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.http = http
        self.namespace = namespace
        self.name = name
        self.topology = topology
        self._graph = build_graph(topology)
        self._poller = Poller(self.sample, interval)
        self.status = PipelineDeploymentStatus()

    @property
    def pipeline(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def poller(self) -> Poller:
        return self._poller

    def _component_key(self, labels: dict[str, str]) -> str | None:
        kind = labels.get(_COMPONENT)
        if kind == "endpoint":
            return ENDPOINT
        if kind == "hook":
            return EVENT_HOOK
        if kind == "algo":
            for node in self.topology.algos:
                same_algo = node.spec is not None and labels.get(_ALGO) == f"{node.spec.owner}.{node.spec.name}"
                if same_algo and labels.get(_INDEX) == str(node.deployment.index):
                    return node.full_name
        return None

    async def _metrics_services(self) -> dict[str, list[str]]:
        """Component -> the service-proxy paths of its /metrics pages."""
        selector = f"{_PIPELINE_DEPLOYMENT}={self.topology.owner}.{self.topology.name}"
        response = await self.http.get(
            f"/api/v1/namespaces/{self.namespace}/services", params={"labelSelector": selector}
        )
        if response.status_code != 200:
            raise refused(response, f"list Services in {self.namespace}")
        found: dict[str, list[str]] = {}
        for service in response.json().get("items", []):
            component = self._component_key(service["metadata"].get("labels") or {})
            ports = [p for p in service["spec"].get("ports", []) if p.get("name") == "metrics"]
            if component and ports:
                name = service["metadata"]["name"]
                found.setdefault(component, []).append(
                    f"/api/v1/namespaces/{self.namespace}/services/{name}:metrics/proxy/metrics"
                )
        return found

    async def sample(self) -> Sample:
        result = Sample(taken=time.monotonic())
        response = await self.http.get(f"{PDS}/namespaces/{self.namespace}/pipelinedeployments/{self.name}")
        if response.status_code == 200:
            self.status = PipelineDeploymentStatus.model_validate(response.json().get("status") or {})
        else:
            result.problems.append(str(refused(response, f"read PipelineDeployment {self.pipeline}")))
        metrics: dict[str, dict[str, float]] = {}
        silent: dict[str, str] = {}
        try:
            services = await self._metrics_services()
        except ActionRefused as exc:
            result.problems.append(str(exc))
            services = {}

        async def scrape(component: str, path: str) -> None:
            try:
                answer = await self.http.get(path, timeout=3.0)
            except httpx.HTTPError as exc:
                silent[component] = f"its metrics page did not answer through the API server ({exc})"
                return
            if answer.status_code != 200:
                silent[component] = str(refused(answer, f"read {component}'s metrics through the service proxy"))
                return
            into = metrics.setdefault(component, {})
            for figure, value in counters(answer.text).items():
                into[figure] = into.get(figure, 0.0) + value

        await asyncio.gather(*(scrape(c, p) for c, paths in services.items() for p in paths))
        for component, why in sorted(silent.items()):
            result.problems.append(f"{component}: {why}")
        for edge in self._graph.edges:
            result.edges[edge.id] = EdgeSample()
        for node in self._graph.nodes:
            result.nodes[node.id] = self._node_sample(node, metrics, silent)
        return result

    def _components(self, component: str) -> list[ComponentStatus]:
        found = []
        for status in self.status.component_statuses:
            key = status.name if status.component_type is None or status.component_type.value == "Algo" else None
            if status.component_type is not None and status.component_type.value in ("Endpoint", "EventHook"):
                key = status.component_type.value
            algo = self.topology.algo(component)
            if key == component or (
                algo and algo.spec and status.name == algo.spec.name and status.index == algo.deployment.index
            ):
                found.append(status)
        return found

    def _node_sample(self, node: Node, metrics: dict[str, dict[str, float]], silent: dict[str, str]) -> NodeSample:
        sample = NodeSample()
        if node.kind in ("retry", "dead-letter"):
            sample.state = "idle"
            return sample
        figures = metrics.get(node.component, {})
        if figures:
            # On Kubernetes the counts come from the components' own counters (the data plane is out of reach).
            sample.errors = figures.get("errors")
            if node.kind == "algo":
                sample.retries = figures.get("retries")
                sample.count_in = int(figures.get("consumed", 0))
                sample.count_out = int(figures.get("produced", 0))
            elif node.kind == "endpoint":
                sample.count_in = sample.count_out = int(figures.get("produced", 0))
            elif node.kind == "hook":
                sample.count_out = int(figures.get("deliveries", 0))
        statuses = self._components(node.component)
        sample.replicas = sum(s.desired for s in statuses) if statuses else None
        sample.ready = sum(s.ready for s in statuses) if statuses else None
        failing = [s for s in statuses if s.reason or (s.desired and s.ready < s.desired)]
        if failing:
            s = failing[0]
            sample.state = "down"
            sample.reason = f"{s.reason}: {s.message or ''}".strip(": ") if s.reason else f"{s.ready}/{s.desired} ready"
        elif node.component in silent:
            sample.state, sample.reason = "down", silent[node.component]
        elif not statuses:
            sample.state, sample.reason = "starting", "not in the PipelineDeployment's status yet"
        return sample

    def _node(self, node_id: str) -> Node:
        node = self._graph.node(node_id)
        if node is None:
            known = ", ".join(n.id for n in self._graph.nodes)
            raise ActionRefused(f"no step {node_id!r} in {self.pipeline}; known: {known}", 404)
        return node

    def _algo(self, component: str) -> tuple[AlgoNode, RunnerConfig] | None:
        algo = self.topology.algo(component)
        return (algo, runner_config(self.topology, algo)) if algo is not None else None

    async def node_detail(self, node_id: str) -> dict[str, Any]:
        node = self._node(node_id)
        pods = [
            {
                "name": p.pod_name or p.name or "?",
                "state": p.status or "?",
                "restarts": p.restarts,
                "pid": None,
                "reason": "; ".join(m for c in p.container_statuses for m in c.messages) or None,
                "log": [line for c in p.container_statuses for line in c.log_tail],
            }
            for p in self.status.pod_statuses
            if _pod_belongs(p, node.component, self.topology)
        ]
        found = self._algo(node.component)
        settings: dict[str, Any] = {"namespace": self.namespace}
        if found:
            config = found[1]
            settings |= {
                "executor": config.executor.value,
                "concurrency": config.runtime.concurrency,
                "consumerGroup": config.consumer_group,
                "retry": {"enabled": config.retry.enabled, "retryTopics": config.retry.retry_topics},
                "deadLetterTopic": config.retry.dead_letter_topic,
            }
        notes = []
        if node.kind in ("algo", "hook", "dead-letter"):
            topic = node.topic or (
                found[1].retry.dead_letter_topic if found else self.topology.hook_dead_letter_topic()
            )
            notes.append(
                f"dead letters are read from Kafka, which this console does not reach on Kubernetes: "
                f"topic {topic}; replay still works (it runs in the cluster)"
            )
        return {
            "node": {"id": node.id, "kind": node.kind, "label": node.label, "component": node.component},
            "settings": settings,
            "processes": pods,
            "deadLetters": [],
            "canReplay": found is not None,
            "problems": [],
            "notes": notes,
        }

    async def send(self, path: str, body: bytes, content_type: str | None) -> dict[str, Any]:
        raise ActionRefused("sending a test message is not offered on Kubernetes yet: use `algorun send --url`", 501)

    async def _may_create_jobs(self) -> tuple[bool, str]:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": self.namespace,
                    "verb": "create",
                    "group": "batch",
                    "resource": "jobs",
                }
            },
        }
        response = await self.http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review)
        if response.status_code != 201:
            raise refused(response, "ask the API server what you may do")
        status = response.json().get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    async def replay(self, node_id: str, trace_id: str | None) -> dict[str, Any]:
        node = self._node(node_id)
        found = self._algo(node.component)
        if found is None:
            raise ActionRefused(f"{node.label}: only an algo's dead letters can be replayed", 400)
        allowed, reason = await self._may_create_jobs()
        if not allowed:
            raise ActionRefused(
                f"your credentials may not create Jobs in namespace {self.namespace}, which replay needs (it runs "
                f"`algorun replay` there as a Job)" + (f": {reason}" if reason else ""),
                403,
            )
        job = await self._replay_job(found[0], trace_id)
        response = await self.http.post(f"/apis/batch/v1/namespaces/{self.namespace}/jobs", json=job)
        if response.status_code != 201:
            raise refused(response, f"create the replay Job in {self.namespace}")
        name = response.json()["metadata"]["name"]
        return {"replayed": 0, "skipped": 0, "targets": {}, "job": name, "started": True}

    async def _replay_job(self, node: AlgoNode, trace_id: str | None) -> dict[str, Any]:
        """A Job from the algo's Deployment's pod template, its runner container running `algorun replay`."""
        assert node.spec is not None
        selector = (
            f"{_PIPELINE_DEPLOYMENT}={self.topology.owner}.{self.topology.name},{_COMPONENT}=algo,"
            f"{_ALGO}={node.spec.owner}.{node.spec.name},{_INDEX}={node.deployment.index}"
        )
        response = await self.http.get(
            f"/apis/apps/v1/namespaces/{self.namespace}/deployments", params={"labelSelector": selector}
        )
        if response.status_code != 200:
            raise refused(response, f"read the Deployment of {node.full_name}")
        items = response.json().get("items", [])
        if not items:
            raise ActionRefused(f"{node.full_name} has no Deployment in {self.namespace} to replay with", 409)
        template = copy.deepcopy(items[0]["spec"]["template"])
        containers = template["spec"]["containers"]
        runner = next((c for c in containers if "--config" in (c.get("command") or []) + (c.get("args") or [])), None)
        if runner is None:
            raise ActionRefused(f"{node.full_name}'s pods have no runner container to replay with", 409)
        argv = (runner.get("command") or []) + (runner.get("args") or [])
        config = argv[argv.index("--config") + 1]
        replay = ["algorun", "replay", "--config", config] + (["--trace-id", trace_id] if trace_id else [])
        runner = {
            k: v for k, v in runner.items() if k not in ("readinessProbe", "livenessProbe", "startupProbe", "ports")
        }
        runner |= {"command": replay, "args": []}
        template["spec"]["containers"] = [runner]
        template["spec"]["restartPolicy"] = "Never"
        template.setdefault("metadata", {}).setdefault("labels", {})[_COMPONENT] = "replay"
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"generateName": f"{items[0]['metadata']['name'][:40]}-replay-", "namespace": self.namespace},
            "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 3600, "template": template},
        }


def _pod_belongs(pod: PodStatus, component: str, topology: Topology) -> bool:
    kind = pod.component_type.value if pod.component_type is not None else None
    if kind in ("Endpoint", "EventHook"):
        return kind == component
    algo = topology.algo(component)
    return bool(algo and algo.spec and pod.name == algo.spec.name and pod.index == algo.deployment.index)
