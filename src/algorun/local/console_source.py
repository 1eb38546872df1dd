"""A pipeline that `algorun run` supervises on this machine, as the console sees it (a console
`PipelineSource`; it lives with the local mode, which serves the console, so the dependency runs one way).

Figures come from the data plane (each consumer group's committed offsets and each topic's end offsets) and
from the components' own /metrics pages (errors, retries); states from the supervisor. Actions go through the
same code as the CLI: `algorun send`'s post and `algorun replay`'s replay.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from algorun.api.configs import RunnerConfig, runner_config
from algorun.api.topology import Topology
from algorun.bus import Bus
from algorun.console import deadletters
from algorun.console.figures import BACKED_UP, DEFAULT_INTERVAL, EdgeSample, NodeSample, Poller, Sample
from algorun.console.graph import Graph, Node, build_graph
from algorun.console.metrics import counters
from algorun.console.source import ActionRefused
from algorun.local.plan import Kind, LocalPlan, Ports
from algorun.local.supervisor import ProcessStatus, State, Supervisor

_VIEW_GROUP = "algorun-console-view"
METRICS_TIMEOUT = 1.5
"""Seconds a component's /metrics page may take before it counts as not answering."""
LOG_LINES = 40


class LocalSource:
    def __init__(
        self,
        topology: Topology,
        plan: LocalPlan,
        supervisor: Supervisor,
        bus: Bus,
        ports: Ports,
        interval: float = DEFAULT_INTERVAL,
        metrics_urls: dict[str, str] | None = None,
    ) -> None:
        self.topology = topology
        self.plan = plan
        self.supervisor = supervisor
        self.bus = bus
        self._graph = build_graph(topology)
        self._poller = Poller(self.sample, interval)
        self.metrics_urls = metrics_urls if metrics_urls is not None else _metrics_urls(plan, ports)
        """Process name -> its /metrics URL."""
        self._session: aiohttp.ClientSession | None = None

    @property
    def pipeline(self) -> str:
        return self._graph.pipeline

    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def poller(self) -> Poller:
        return self._poller

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _statuses(self, component: str) -> list[ProcessStatus]:
        return [s for s in self.supervisor.statuses if s.spec.component == component]

    async def _scrape(self) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """Counters per component (summed over its processes), and the processes that did not answer."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=METRICS_TIMEOUT))
        session = self._session

        async def one(url: str) -> dict[str, float] | str:
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        return f"its metrics page {url} answered {response.status}"
                    return counters(await response.text())
            except TimeoutError:
                return f"its metrics page {url} did not answer within {METRICS_TIMEOUT:g}s"
            except (aiohttp.ClientError, OSError) as exc:
                return f"its metrics page {url} did not answer ({type(exc).__name__}: {exc})"
            except ValueError as exc:
                return f"its metrics page {url} is not Prometheus text ({exc})"

        names = list(self.metrics_urls)
        answers = await asyncio.gather(*(one(self.metrics_urls[n]) for n in names))
        by_process = {s.spec.name: s.spec.component or "" for s in self.supervisor.statuses}
        totals: dict[str, dict[str, float]] = {}
        silent: dict[str, str] = {}
        for name, answer in zip(names, answers, strict=True):
            component = by_process.get(name, name)
            if isinstance(answer, str):
                silent[name] = answer
                continue
            into = totals.setdefault(component, {})
            for figure, value in answer.items():
                into[figure] = into.get(figure, 0.0) + value
        return totals, silent

    async def sample(self) -> Sample:
        import time

        taken = time.monotonic()
        result = Sample(taken=taken)
        ends: dict[str, int] = {}
        lags: dict[tuple[str, str], tuple[int, int]] = {}
        """(component, topic) -> (consumed, backlog)."""
        try:
            for tp, lag in (await self.bus.lag(_VIEW_GROUP, sorted(self.plan.topics))).items():
                ends[tp.topic] = ends.get(tp.topic, 0) + lag.end
            for watch in self.plan.groups:
                if not watch.topics:
                    continue
                for tp, lag in (await self.bus.lag(watch.group, watch.topics)).items():
                    consumed, backlog = lags.get((watch.component, tp.topic), (0, 0))
                    lags[(watch.component, tp.topic)] = (
                        consumed + max(0, (lag.committed or lag.start) - lag.start),
                        backlog + lag.lag,
                    )
        except Exception as exc:  # the data plane itself: said in the page, the figures left empty
            result.problems.append(f"the data plane could not be read: {type(exc).__name__}: {exc}")
        metrics, silent = await self._scrape()
        for name, why in silent.items():
            result.problems.append(f"{name}: {why}")
        topics_into: dict[str, list[str]] = {}
        for edge in self._graph.edges:
            if edge.topic and edge.kind != "dead-letter":
                topics_into.setdefault(edge.target, []).append(edge.topic)
            target = self._graph.node(edge.target)
            edge_backlog: int | None = lags.get((target.component, edge.topic or ""), (0, 0))[1] if target else None
            result.edges[edge.id] = EdgeSample(
                count=ends.get(edge.topic or "") if edge.topic else None, backlog=edge_backlog
            )
        for node in self._graph.nodes:
            result.nodes[node.id] = self._node_sample(node, ends, lags, metrics, silent, topics_into)
        return result

    def _node_sample(
        self,
        node: Node,
        ends: dict[str, int],
        lags: dict[tuple[str, str], tuple[int, int]],
        metrics: dict[str, dict[str, float]],
        silent: dict[str, str],
        topics_into: dict[str, list[str]],
    ) -> NodeSample:
        sample = NodeSample()
        if node.kind in ("retry", "dead-letter"):
            topic = node.topic or ""
            sample.count_in = ends.get(topic, 0)
            sample.backlog = lags.get((node.component, topic), (0, 0))[1] if node.kind == "retry" else None
            sample.state = "idle"
            return sample
        statuses = self._statuses(node.component)
        sample.replicas = len([s for s in statuses if s.spec.kind != Kind.ALGO]) or len(statuses)
        sample.ready = len([s for s in statuses if s.spec.kind != Kind.ALGO and s.state == State.READY])
        if node.kind == "endpoint":
            out = [e.topic for e in self._graph.edges if e.source == node.id and e.topic]
            sample.count_in = sample.count_out = sum(ends.get(t, 0) for t in set(out))
        else:
            reads = topics_into.get(node.id, [])
            if node.kind == "algo":
                reads = [*reads]  # retry topics come in through the retry edges already
            sample.count_in = sum(lags.get((node.component, t), (0, 0))[0] for t in set(reads))
            sample.backlog = sum(lags.get((node.component, t), (0, 0))[1] for t in set(reads))
            if node.kind == "algo":
                sample.count_out = sum(ends.get(t, 0) for t in self.plan.output_topics.get(node.component, []))
                dead = [t for t, c in self.plan.dead_letter_topics.items() if c == node.component]
                sample.dead_letters = sum(ends.get(t, 0) for t in dead)
        figures = metrics.get(node.component, {})
        if node.kind in ("algo", "hook", "endpoint") and figures:
            sample.errors = figures.get("errors")
            sample.retries = figures.get("retries") if node.kind == "algo" else None
            if node.kind == "hook":
                sample.count_out = int(figures.get("deliveries", 0))
        if node.kind == "hook":
            dead = [t for t, c in self.plan.dead_letter_topics.items() if c == node.component]
            sample.dead_letters = sum(ends.get(t, 0) for t in dead)
        sample.state, sample.reason = self._state(statuses, silent, sample.backlog)
        return sample

    def _state(
        self, statuses: list[ProcessStatus], silent: dict[str, str], backlog: int | None
    ) -> tuple[str, str | None]:
        """down when a process of the component is not ready or does not answer; backed-up over BACKED_UP."""
        for status in statuses:
            if status.state in (State.FAILED, State.RESTARTING, State.FAILING):
                return "down", f"{status.spec.name}: {status.reason or status.state.value}"
            if status.state != State.READY:
                return "down", f"{status.spec.name}: not ready ({status.state.value})"
            if status.spec.name in silent:
                return "down", f"{status.spec.name}: {silent[status.spec.name]}"
        if backlog is not None and backlog > BACKED_UP:
            return "backed-up", f"{backlog} messages waiting"
        return "up", None

    def _node(self, node_id: str) -> Node:
        node = self._graph.node(node_id)
        if node is None:
            known = ", ".join(n.id for n in self._graph.nodes)
            raise ActionRefused(f"no step {node_id!r} in {self.pipeline}; known: {known}", 404)
        return node

    def _runner_config(self, component: str) -> RunnerConfig | None:
        algo = self.topology.algo(component)
        return runner_config(self.topology, algo) if algo is not None else None

    async def node_detail(self, node_id: str) -> dict[str, Any]:
        node = self._node(node_id)
        statuses = self._statuses(node.component)
        processes = [
            {
                "name": s.spec.name,
                "state": s.state.value,
                "restarts": s.restarts,
                "pid": s.pid,
                "reason": s.reason,
                "log": self.supervisor.tail(s, LOG_LINES),
            }
            for s in statuses
        ]
        dead_topics = [node.topic] if node.kind == "dead-letter" and node.topic else []
        if node.kind in ("algo", "hook"):
            dead_topics = [t for t, c in self.plan.dead_letter_topics.items() if c == node.component]
        letters: list[dict[str, Any]] = []
        problems: list[str] = []
        for topic in dead_topics:
            try:
                letters += await deadletters.recent(self.bus, topic)
            except Exception as exc:  # shown in the panel instead of the list
                problems.append(f"the dead letters of {topic} could not be read: {type(exc).__name__}: {exc}")
        return {
            "node": {"id": node.id, "kind": node.kind, "label": node.label, "component": node.component},
            "settings": self._settings(node),
            "processes": processes,
            "deadLetters": letters,
            "canReplay": self._runner_config(node.component) is not None,
            "problems": problems,
        }

    def _settings(self, node: Node) -> dict[str, Any]:
        config = self._runner_config(node.component)
        if config is not None:
            runtime = config.runtime
            return {
                "executor": config.executor.value,
                "entrypoint": config.entrypoint,
                "concurrency": runtime.concurrency,
                "workers": runtime.workers,
                "keyConcurrency": runtime.key_concurrency,
                "exactlyOnce": runtime.exactly_once,
                "timeoutSeconds": config.timeout_seconds,
                "consumerGroup": config.consumer_group,
                "inputs": {i.name: [t.topic for t in i.topics] for i in config.inputs},
                "outputs": {o.name: o.topic for o in config.outputs},
                "retry": {
                    "enabled": config.retry.enabled,
                    "steps": [
                        {"backoff": s.backoff_duration, "repeat": s.repeat}
                        for s in (config.retry.strategy.steps if config.retry.strategy else [])
                    ],
                    "retryTopics": config.retry.retry_topics,
                    "deadLetterTopic": config.retry.dead_letter_topic,
                },
            }
        if node.kind == "endpoint":
            url = next((u for u in self.plan.endpoint_urls if u.endswith("/" + node.id.split(":", 1)[1])), None)
            return {"url": url, "contentType": node.detail or None, "topic": _first_topic(self._graph, node.id)}
        if node.kind == "hook":
            return {"webhooks": node.detail, "topics": [e.topic for e in self._graph.edges if e.target == node.id]}
        return {"topic": node.topic}

    async def send(self, path: str, body: bytes, content_type: str | None) -> dict[str, Any]:
        from algorun.local.runtime import RunFailed, post

        url = next((u for u in self.plan.endpoint_urls if u.rsplit("/", 1)[1] == path), None)
        if url is None:
            known = ", ".join(u.rsplit("/", 1)[1] for u in self.plan.endpoint_urls) or "none"
            raise ActionRefused(f"no endpoint path {path!r}; known: {known}", 404)
        declared = self.topology.spec.endpoint.path(path)
        try:
            return await post(url, body, content_type or (declared.content_type if declared else None), None, path)
        except RunFailed as exc:
            raise ActionRefused(str(exc), 502) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ActionRefused(f"the endpoint at {url} did not answer: {exc}", 502) from exc

    async def replay(self, node_id: str, trace_id: str | None) -> dict[str, Any]:
        from algorun.runner.replay import replay

        node = self._node(node_id)
        config = self._runner_config(node.component)
        if config is None:
            raise ActionRefused(f"{node.label}: only an algo's dead letters can be replayed", 400)
        result = await replay(config, self.bus, trace_id=trace_id or None, idle_seconds=1.0)
        return {"replayed": result.replayed, "skipped": result.skipped, "targets": result.targets}


def _first_topic(graph: Graph, node_id: str) -> str | None:
    return next((e.topic for e in graph.edges if e.source == node_id and e.topic), None)


def _metrics_urls(plan: LocalPlan, ports: Ports) -> dict[str, str]:
    """Each runner's and the hook runner's /metrics (beside its /ready), and the endpoint's monitoring port."""
    urls: dict[str, str] = {}
    for spec in plan.processes:
        if spec.kind == Kind.ENDPOINT:
            urls[spec.name] = f"http://{ports.host}:{ports.metrics}/metrics"
        elif spec.kind in (Kind.RUNNER, Kind.HOOK) and spec.ready_url:
            urls[spec.name] = spec.ready_url.rsplit("/", 1)[0] + "/metrics"
    return urls
