"""What the e2e fault tests share: a paced stream of traced messages, the tally of what the webhook received for
it, the objects one PipelineDeployment owns on the cluster, and the figures each test reports.

- `Stream` posts unique messages to the endpoint's Service from a background thread, each under its own traceID
  (`POST /{owner}/{name}/{path}/{traceID}`), so every delivery at the webhook names the input it came from. A
  message counts as sent only once the endpoint answered 202 (the broker, or its write-ahead log, has it); a
  refusal is retried with the same traceID, as a client keeping at-least-once would. It is paced (a fixed rate)
  so the stream lasts through the fault instead of being a burst the pipeline has already drained.
- `Tally` reads the receiver's deliveries for one webhook path and says, per input, which outputs arrived, how
  many times, and whether each is the right output of that input: lost = an expected output that never
  arrived; duplicates = deliveries beyond the first of an output (allowed: delivery is at-least-once).
- `owned_objects` lists every object carrying the deployment's labels (`app.kubernetes.io/managed-by=
  pipeline-operator`, `algo.run/pipeline-deployment=<owner>.<name>`) in every kind the operator writes or that
  Kubernetes derives from them (ReplicaSets, Pods, EndpointSlices), so "exactly once" and "all gone" are
  checked over the whole cluster, not only the kinds a test thought of.
- `Figures` collects one line per test and shows them in pytest's terminal summary (section "e2e fault
  figures"), so the figures are in the output of a passing `make test` too, not only under `-s`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.kube import KubeAPI

MANAGED_BY = "app.kubernetes.io/managed-by=pipeline-operator"

# (API prefix, plural) of every namespaced kind one deployment's objects can be: what the operator renders
# (tests/unit's golden files list them) and what Kubernetes makes from them (ReplicaSets, Pods, EndpointSlices).
NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (
    ("/apis/apps/v1", "deployments"),
    ("/apis/apps/v1", "statefulsets"),
    ("/apis/apps/v1", "replicasets"),
    ("/api/v1", "pods"),
    ("/api/v1", "services"),
    ("/api/v1", "configmaps"),
    ("/api/v1", "secrets"),
    ("/api/v1", "serviceaccounts"),
    ("/apis/discovery.k8s.io/v1", "endpointslices"),
    ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    ("/apis/policy/v1", "poddisruptionbudgets"),
    ("/apis/monitoring.coreos.com/v1", "servicemonitors"),
    ("/apis/getambassador.io/v3alpha1", "mappings"),
    ("/apis/gateway.networking.k8s.io/v1", "httproutes"),
    ("/apis/cert-manager.io/v1", "certificates"),
)
STRIMZI_KINDS: tuple[str, ...] = ("kafkatopics", "kafkausers", "kafkaconnects", "kafkaconnectors")
DERIVED = {"replicasets", "pods", "endpointslices"}
"""Kinds Kubernetes makes from the operator's objects (not applied by the operator itself)."""


# ---- figures ---------------------------------------------------------------------------------------------


class Figures:
    """A pytest plugin object: the figure lines of this session's fault tests, shown in the terminal summary."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.section("e2e fault figures")
            for line in self.lines:
                terminalreporter.write_line(line)


def report(config: pytest.Config, test: str, figure: str) -> None:
    """Print `figure` now (seen with -s) and keep it for the terminal summary (seen always)."""
    plugin = config.pluginmanager.get_plugin("algorun-fault-figures")
    if plugin is None:
        plugin = Figures()
        config.pluginmanager.register(plugin, "algorun-fault-figures")
    assert isinstance(plugin, Figures)
    line = f"{test}: {figure}"
    plugin.lines.append(line)
    print(line, flush=True)


# ---- the stream ------------------------------------------------------------------------------------------


def text_of(tag: str, index: int) -> str:
    """The body of message `index`: unique, so its outputs (word count, reversed upper case) are checkable."""
    return f"fault {tag} message {index} " + " ".join(["word"] * (index % 7))


@dataclass
class Stream:
    """Paced, traced messages to one endpoint path in a background thread (see the module docstring)."""

    url: str
    """The endpoint path's URL: `http://<service>/{owner}/{name}/{path}`."""
    tag: str
    rate: float
    """Messages per second."""
    limit: int
    """Never more than this many messages."""
    minimum: int = 0
    """`finish()` does not stop the stream before this many were sent."""
    sent: dict[str, str] = field(default_factory=dict)
    """traceID -> body, of every message the endpoint accepted (202)."""
    retries: int = 0
    refused: list[str] = field(default_factory=list)
    _finish: threading.Event = field(default_factory=threading.Event)
    _abort: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> Stream:
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.tag}", daemon=True)
        self._thread.start()
        return self

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.sent)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self.sent)

    def finish(self) -> None:
        """Stop once `minimum` messages were sent (at once when they were)."""
        self._finish.set()

    def abort(self) -> None:
        """Stop now, whatever was sent (a test's teardown: a failed test leaves no sender behind)."""
        self._abort.set()
        self._finish.set()
        if self._thread is not None:
            self._thread.join(15)

    def join(self, timeout: float = 120.0) -> dict[str, str]:
        """Wait until the sender stopped; every message it sent, or fail with what went wrong."""
        assert self._thread is not None, "the stream was not started"
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the stream {self.tag} still sending after {timeout:.0f}s"
        if self._error is not None:
            raise AssertionError(f"the stream {self.tag} failed: {self._error!r}") from self._error
        assert not self.refused, f"the endpoint never accepted {len(self.refused)} messages: {self.refused[:5]}"
        return self.snapshot()

    def _run(self) -> None:
        try:
            began = time.monotonic()
            for index in range(self.limit):
                if self._abort.is_set() or (self._finish.is_set() and index >= self.minimum):
                    return
                # Pacing, not synchronisation: the next message is due at a fixed rate from the start.
                self._finish.wait(max(0.0, began + index / self.rate - time.monotonic()))
                trace = f"{self.tag}-{index:05d}"
                body = text_of(self.tag, index)
                if self._send(trace, body):
                    with self._lock:
                        self.sent[trace] = body
                else:
                    self.refused.append(trace)
        except BaseException as exc:  # reported by join()
            self._error = exc

    def _send(self, trace: str, body: str, patience: float = 30.0) -> bool:
        """POST until the endpoint answers 202; False when it did not within `patience` seconds."""
        deadline = time.monotonic() + patience
        while True:
            request = urllib.request.Request(
                f"{self.url}/{trace}", data=body.encode(), method="POST", headers={"Content-Type": "text/plain"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 202:
                        return True
            except (urllib.error.URLError, OSError):
                pass  # refused, reset or 4xx/5xx: retried below with the same traceID
            self.retries += 1
            if time.monotonic() > deadline or self._abort.wait(0.2):  # back off before the retry
                return False


# ---- what arrived ----------------------------------------------------------------------------------------


def expected_outputs(body: str) -> dict[str, str]:
    """text-transform's two outputs of one input: `counts` (wordcount of the upper-cased text, JSON) and
    `reversed` (the upper-cased text reversed)."""
    upper = body.upper()
    counts = {"words": len(upper.split()), "lines": len(upper.splitlines()), "chars": len(upper)}
    return {"counts": json.dumps(counts, sort_keys=True), "reversed": upper[::-1]}


def output_name(delivery_body: str) -> tuple[str, str]:
    """(output, canonical body) of one delivery: the word count is JSON, the reversed text is not."""
    try:
        value = json.loads(delivery_body)
    except ValueError:
        return "reversed", delivery_body
    if isinstance(value, dict):
        return "counts", json.dumps(value, sort_keys=True)
    return "reversed", delivery_body


@dataclass
class Tally:
    """The deliveries for a set of sent messages: lost, duplicated and wrong outputs (see the module docstring)."""

    sent: dict[str, str]
    deliveries: int = 0
    copies: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    wrong: list[str] = field(default_factory=list)
    strangers: int = 0
    """Deliveries whose traceID is no message of this stream."""

    @classmethod
    def of(cls, sent: dict[str, str], deliveries: list[dict[str, Any]]) -> Tally:
        tally = cls(sent)
        for delivery in deliveries:
            trace = str(delivery.get("traceID") or "")
            if trace not in sent:
                tally.strangers += 1
                continue
            tally.deliveries += 1
            name, body = output_name(str(delivery["body"]))
            tally.copies[(trace, name)] += 1
            want = expected_outputs(sent[trace])[name]
            if body != want:
                tally.wrong.append(f"{trace} {name}: {body!r}, expected {want!r}")
        return tally

    @property
    def lost(self) -> list[tuple[str, str]]:
        return [(t, name) for t in sorted(self.sent) for name in ("counts", "reversed") if not self.copies[(t, name)]]

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.copies.values() if n > 1)

    @property
    def complete(self) -> bool:
        return not self.lost

    @property
    def inputs_done(self) -> int:
        """Inputs whose two outputs both arrived."""
        return sum(1 for t in self.sent if self.copies[(t, "counts")] and self.copies[(t, "reversed")])

    def summary(self) -> str:
        lost = self.lost
        return (
            f"{len(self.sent)} inputs, {self.deliveries} deliveries, {self.inputs_done} inputs complete, "
            f"{len(lost)} outputs lost {lost[:5]}, {self.duplicates} duplicates, {len(self.wrong)} wrong "
            f"{self.wrong[:3]}, {self.strangers} from other streams"
        )


# ---- objects on the cluster ------------------------------------------------------------------------------


def owned_objects(api: KubeAPI, namespace: str, deployment_label: str, kafka_namespace: str) -> list[tuple[str, str]]:
    """(plural, namespace/name) of every object with the deployment's labels, in every kind that can hold one
    (kinds the cluster does not serve are skipped), sorted; the same object twice would appear twice."""
    selector = urllib.parse.quote(f"{MANAGED_BY},algo.run/pipeline-deployment={deployment_label}", safe="=,")
    places = [(f"{prefix}/namespaces/{namespace}/{plural}", plural) for prefix, plural in NAMESPACED_KINDS]
    version = strimzi_version(api)
    if version is not None:
        places += [
            (f"/apis/kafka.strimzi.io/{version}/namespaces/{kafka_namespace}/{plural}", plural)
            for plural in STRIMZI_KINDS
        ]
    found = []
    for path, plural in places:
        status, body = api.request("GET", f"{path}?labelSelector={selector}")
        if status == 404:
            continue
        assert status == 200, f"listing {path}: HTTP {status}: {body}"
        for item in body["items"]:
            meta = item["metadata"]
            found.append((plural, f"{meta.get('namespace', '')}/{meta['name']}"))
    return sorted(found)


def any_object(api: KubeAPI, namespace: str, deployment_label: str, kafka_namespace: str) -> bool:
    """Whether the operator wrote any object of the deployment yet: a cheap check (two lists) to poll fast. It
    applies the KafkaTopics first, then each component's ConfigMap before its Deployment."""
    selector = urllib.parse.quote(f"{MANAGED_BY},algo.run/pipeline-deployment={deployment_label}", safe="=,")
    version = strimzi_version(api)
    paths = [f"/api/v1/namespaces/{namespace}/configmaps"]
    if version is not None:
        paths.insert(0, f"/apis/kafka.strimzi.io/{version}/namespaces/{kafka_namespace}/kafkatopics")
    for path in paths:
        status, body = api.request("GET", f"{path}?labelSelector={selector}&limit=1")
        if status == 200 and body["items"]:
            return True
    return False


def strimzi_version(api: KubeAPI) -> str | None:
    status, group = api.request("GET", "/apis/kafka.strimzi.io")
    return str(group["preferredVersion"]["version"]) if status == 200 else None


def ready_pods(api: KubeAPI, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods matching `selector` that are Ready and not being deleted."""
    status, body = api.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}")
    assert status == 200, body
    return [
        pod
        for pod in body["items"]
        if not pod["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or []
        )
    ]


def pods(api: KubeAPI, namespace: str, selector: str) -> list[dict[str, Any]]:
    status, body = api.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}")
    assert status == 200, body
    return list(body["items"])


def container_pids(pod: dict[str, Any], container: str) -> list[int]:
    """The host PIDs of one container of a pod. The cluster's one node is this machine (tests.support.cluster),
    so a container's processes are this machine's processes in the container's cgroup (the kubelet's cgroupfs
    driver puts the container ID in the cgroup path)."""
    status = next(c for c in pod["status"]["containerStatuses"] if c["name"] == container)
    container_id = str(status["containerID"]).split("://", 1)[1]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroup = (proc / "cgroup").read_text()
        except OSError:  # exited meanwhile
            continue
        if container_id in cgroup:
            found.append(int(proc.name))
    assert found, f"no process of container {container} ({container_id}) on this machine"
    return found


def kill(pids: list[int]) -> None:
    """SIGKILL: what a crash or the OOM killer does; the process finishes nothing (a pod deletion, even with
    grace 0, gives it SIGTERM and the kubelet's minimum of 2 s)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(pid, signal.SIGKILL)


def delete_namespace(api: KubeAPI, namespace: str) -> None:
    """Delete a test's namespace without waiting (the operator's finalizer and the kubelet finish it)."""
    api.request("DELETE", f"/api/v1/namespaces/{namespace}")
