"""Failing components in the status and the Events, from pod states alone (no I/O): a missing image, a crash loop,
a container whose readiness probe keeps failing; one reason per failure whatever the kubelet cycles through,
one Event per distinct failure, the last lines of the log bounded; and the reconciler's log reads, bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from algorun.api.status import PipelineDeploymentStatus
from algorun.operator import reconcile as reconcile_module
from algorun.operator.notify import Notifier
from algorun.operator.reconcile import MAX_LOG_READS, Reconciler, Result
from algorun.operator.settings import OperatorOptions
from algorun.operator.status import (
    CRASH_LOOP_SETTLE_SECONDS,
    EVENT_MESSAGE_CHARS,
    LOG_LINE_CHARS,
    LOG_TAIL_CHARS,
    LOG_TAIL_LINES,
    LogRequest,
    Observed,
    component_events,
    compute,
    failure_message,
    log_requests,
    recheck_after,
    status_patch,
    tail_lines,
)

DEPLOYMENT = "demo-text-transform-wordcount-1"
POD = f"{DEPLOYMENT}-5d8f-x2"
LABELS = {
    "app.kubernetes.io/component": "algo",
    "algo.run/algo": "demo.wordcount",
    "algo.run/algo-version": "1",
    "algo.run/index": "1",
}
STARTED = "2030-01-01T00:00:00Z"


def _deployment(ready: int = 0) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "generation": 1, "labels": LABELS},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": 1, "replicas": 1},
    }


def _pod(
    state: dict[str, Any],
    *,
    ready: bool = False,
    restarts: int = 0,
    last: dict[str, Any] | None = None,
    probe: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "wordcount", "image": "algorun/examples:1"}
    if probe is not None:
        container["readinessProbe"] = probe
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": str(ready), "lastTransitionTime": STARTED}],
        "containerStatuses": [
            {
                "name": "wordcount",
                "ready": ready,
                "restartCount": restarts,
                "containerID": f"containerd://c{restarts}",
                "state": state,
                "lastState": {"terminated": last} if last else {},
            }
        ],
    }
    if init is not None:
        status["initContainerStatuses"] = [init]
    return {
        "metadata": {"name": POD, "labels": LABELS},
        "spec": {"containers": [container]},
        "status": status,
    }


def _status(
    pod: dict[str, Any],
    logs: dict[tuple[str, str], list[str]] | None = None,
    *,
    ready: int = 0,
    at: str = "2030-01-01T00:10:00Z",
    old: PipelineDeploymentStatus | None = None,
    **kw: Any,
) -> PipelineDeploymentStatus:
    observed = Observed(
        owner="demo",
        name="text-transform",
        namespace="ns",
        generation=1,
        expected=[("Deployment", DEPLOYMENT)],
        workloads=[_deployment(ready)],
        pods=[pod],
        logs=logs or {},
        **kw,
    )
    return compute(observed, old, at=at)


def _degraded(status: PipelineDeploymentStatus) -> tuple[str | None, str | None]:
    cond = next(c for c in status.conditions if c.type == "Degraded")
    return cond.reason, cond.message


def test_a_missing_image_is_one_failure_while_the_kubelet_alternates_its_reasons() -> None:
    pulling = _pod({"waiting": {"reason": "ErrImagePull", "message": "failed to pull image algorun/none:9"}})
    first = _status(pulling)
    (comp,) = first.component_statuses
    assert (first.status, comp.status, comp.reason) == ("Error", "Error", "ImagePullBackOff")
    assert f"container wordcount of pod {POD}" in str(comp.message) and "algorun/none:9" in str(comp.message)
    assert comp.log_tail == [] and log_requests([pulling]) == [], "a container that never started has no log"
    assert _degraded(first)[0] == "ImagePullBackOff"
    assert first.pod_statuses[0].status == "ImagePullBackOff"
    (event,) = component_events(None, first)
    assert (event.type, event.reason) == ("Warning", "ImagePullBackOff")
    assert event.message.startswith(f"algo demo/wordcount:1[1] ({DEPLOYMENT}): ImagePullBackOff: container wordcount")

    backing_off = _pod({"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "none"'}})
    second = _status(backing_off)
    assert second.component_statuses[0].reason == "ImagePullBackOff"
    assert component_events(first, second) == [], "the same failure is announced once"


def test_a_crash_loop_stays_one_failure_through_its_states_and_carries_the_log_of_the_crashed_instance() -> None:
    crashed = {"exitCode": 2, "reason": "Error", "containerID": "containerd://c2"}
    waiting = _pod(
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}},
        restarts=3,
        last=crashed,
    )
    (request,) = log_requests([waiting])
    assert request == LogRequest(POD, "wordcount", previous=True, instance="containerd://c2", final=True)
    tail = ["Traceback (most recent call last):", "FileNotFoundError: algos/missing.py"]
    first = _status(waiting, {(POD, "wordcount"): tail})
    comp = first.component_statuses[0]
    assert (comp.reason, comp.log_tail) == ("CrashLoopBackOff", tail)
    assert "restarted 3 times, last exit code 2 (Error)" in str(comp.message)
    assert first.pod_statuses[0].container_statuses[0].log_tail == tail
    (event,) = component_events(None, first)
    assert event.reason == "CrashLoopBackOff"
    assert event.message.endswith("last lines of its log:\n" + "\n".join(tail))

    # between back-offs the kubelet runs it again (not ready yet), then it exits again: still the same failure
    for state in ({"running": {"startedAt": STARTED}}, {"terminated": {"exitCode": 2, "reason": "Error"}}):
        again = _status(_pod(state, restarts=4, last=crashed), {(POD, "wordcount"): tail})
        assert again.component_statuses[0].reason == "CrashLoopBackOff", state
        assert component_events(first, again) == []

    # without a readiness probe it is ready the moment it runs: still the same crash loop until it has settled
    just_up = _pod({"running": {"startedAt": STARTED}}, ready=True, restarts=4, last=crashed)
    settling = _status(just_up, {(POD, "wordcount"): tail}, ready=1, at="2030-01-01T00:00:10Z")
    assert settling.status == "Error" and settling.component_statuses[0].reason == "CrashLoopBackOff"
    assert f"running again since {STARTED}" in str(settling.component_statuses[0].message)
    assert component_events(first, settling) == []
    assert recheck_after([just_up], "2030-01-01T00:00:10Z") == pytest.approx(CRASH_LOOP_SETTLE_SECONDS - 10)

    recovered = _status(_pod({"running": {"startedAt": STARTED}}, ready=True, restarts=4, last=crashed), ready=1)
    assert recovered.status == "Deployed" and recovered.component_statuses[0].reason is None
    (event,) = component_events(first, recovered)
    assert (event.type, event.reason) == ("Normal", "ComponentRecovered")
    assert "CrashLoopBackOff" in event.message


def test_a_container_whose_readiness_probe_keeps_failing_fails_once_the_probe_allowance_has_passed() -> None:
    probe = {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 2, "failureThreshold": 3}
    pod = _pod({"running": {"startedAt": STARTED}}, probe=probe)
    # allowance: 0 initial delay + 3 failures x 2 s + 1 s timeout = 7 s
    early = _status(pod, at="2030-01-01T00:00:04Z")
    assert early.status == "Progressing" and early.component_statuses[0].reason is None
    assert recheck_after([pod], "2030-01-01T00:00:04Z") == pytest.approx(3.0)
    assert log_requests([pod], "2030-01-01T00:00:04Z") == []

    late = _status(pod, {(POD, "wordcount"): ["warming up forever"]}, at="2030-01-01T00:00:08Z")
    comp = late.component_statuses[0]
    assert (late.status, comp.reason, comp.log_tail) == ("Error", "ReadinessProbeFailing", ["warming up forever"])
    assert f"not ready since {STARTED}" in str(comp.message)
    assert log_requests([pod], "2030-01-01T00:00:08Z") == [
        LogRequest(POD, "wordcount", previous=False, instance="containerd://c0", final=False)
    ]
    assert recheck_after([pod], "2030-01-01T00:00:08Z") is None
    later = _status(pod, {(POD, "wordcount"): ["warming up forever"]}, at="2030-01-01T01:00:00Z", old=late)
    assert status_patch(later, late.to_json()) is None, "time passing alone does not rewrite the status"


def test_a_running_container_without_readiness_probe_or_still_starting_is_not_failing() -> None:
    assert _status(_pod({"running": {"startedAt": STARTED}})).component_statuses[0].reason is None
    starting = _pod({"running": {"startedAt": STARTED}}, probe={"periodSeconds": 1})
    starting["status"]["containerStatuses"][0]["started"] = False  # its startup probe has not passed yet
    assert _status(starting).component_statuses[0].reason is None
    assert recheck_after([starting]) is None


def test_an_init_container_that_cannot_pull_its_image_fails_the_component() -> None:
    init = {"name": "algo-runner-init", "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    pod = _pod({"waiting": {"reason": "PodInitializing"}}, init=init)
    comp = _status(pod).component_statuses[0]
    assert comp.reason == "ImagePullBackOff" and "init container algo-runner-init" in str(comp.message)


def test_degraded_reason_names_the_problem() -> None:
    from algorun.operator.apis import STRIMZI_MISSING

    no_strimzi = _status(_pod({"running": {"startedAt": STARTED}}), problems=[STRIMZI_MISSING])
    assert _degraded(no_strimzi)[0] == "InvalidSpec"
    no_strimzi = _status(
        _pod({"running": {"startedAt": STARTED}}), problems=[STRIMZI_MISSING], problem_reason="StrimziMissing"
    )
    assert _degraded(no_strimzi) == ("StrimziMissing", STRIMZI_MISSING)
    healthy = _status(_pod({"running": {"startedAt": STARTED}}, ready=True), ready=1)
    assert _degraded(healthy) == ("AsExpected", "no problems")


def test_log_tail_is_bounded_and_keeps_the_newest_lines() -> None:
    text = "".join(f"line {i} " + "x" * 500 + "\n" for i in range(100)) + "bell\a and\ttab\n\n"
    lines = tail_lines(text)
    assert len(lines) <= LOG_TAIL_LINES and all(len(line) <= LOG_LINE_CHARS for line in lines)
    assert sum(len(line) + 1 for line in lines) <= LOG_TAIL_CHARS
    assert lines[-1] == "bell  and    tab" and lines[-2].startswith("line 99 ")
    assert tail_lines("") == []


def test_event_message_fits_and_keeps_the_last_log_lines() -> None:
    pod = _pod(
        {"waiting": {"reason": "CrashLoopBackOff", "message": "m" * 2000}},
        restarts=1,
        last={"exitCode": 1, "reason": "Error"},
    )
    tail = [f"log line {i} " + "y" * 200 for i in range(15)]
    comp = _status(pod, {(POD, "wordcount"): tail}).component_statuses[0]
    message = failure_message(comp)
    assert len(message) <= EVENT_MESSAGE_CHARS
    assert message.endswith(tail[-1]) and tail[0] not in message
    assert message.startswith("algo demo/wordcount:1[1]")


class LogCluster:
    """Answers pods/log requests, counting them, and pod reads from `pods`."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, str, bool]] = []
        self.refuse = False
        self.pods: dict[str, dict[str, Any]] = {}

    async def get(self, kind: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        assert kind.kind == "Pod"
        return self.pods.get(name)

    async def pod_log(
        self, name: str, namespace: str, container: str, *, previous: bool, tail_lines: int, limit_bytes: int
    ) -> str:
        assert tail_lines == LOG_TAIL_LINES and limit_bytes > 0
        self.reads.append((name, container, previous))
        if self.refuse:
            raise RuntimeError("the kubelet is unreachable")
        return f"log of {name}/{container} #{len(self.reads)}\n"


def test_the_reconciler_reads_logs_at_a_bounded_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = LogCluster()
    settings = OperatorOptions()
    reconciler = Reconciler(cluster, settings, Notifier.from_settings(settings))  # type: ignore[arg-type]
    clock = [1000.0]
    monkeypatch.setattr(reconcile_module.time, "monotonic", lambda: clock[0])
    key = ("ns", "pd")
    exited = LogRequest("p1", "c", previous=True, instance="containerd://a", final=True)
    running = LogRequest("p2", "c", previous=False, instance="containerd://b", final=False)
    many = [LogRequest(f"q{i}", "c", previous=True, instance=f"i{i}", final=True) for i in range(MAX_LOG_READS + 2)]

    async def read(wanted: list[LogRequest]) -> tuple[dict[tuple[str, str], list[str]], Result]:
        result = Result()
        return await reconciler._read_logs(key, "ns", wanted, result), result

    async def scenario() -> None:
        logs, result = await read([exited, running])
        assert logs == {("p1", "c"): ["log of p1/c #1"], ("p2", "c"): ["log of p2/c #2"]}
        assert result.log_reads == 2
        clock[0] += 30
        logs, result = await read([exited, running])
        assert result.log_reads == 0, "an exited instance's log is read once; a running one not before the refresh"
        clock[0] += reconcile_module.LOG_REFRESH_SECONDS
        logs, result = await read([exited, running])
        assert result.log_reads == 1 and logs[("p2", "c")] == ["log of p2/c #3"]
        restarted = LogRequest("p1", "c", previous=True, instance="containerd://c", final=True)
        logs, result = await read([restarted])
        assert result.log_reads == 1 and logs == {("p1", "c"): ["log of p1/c #4"]}, "a new crash: its log is read"
        assert list(reconciler._logs[key]) == [restarted], "logs no longer wanted are forgotten"
        logs, result = await read(many)
        assert result.log_reads == MAX_LOG_READS and len(logs) == MAX_LOG_READS
        logs, result = await read(many)
        assert result.log_reads == 2 and len(logs) == len(many), "the rest on the next reconcile"
        await read([])
        assert key not in reconciler._logs
        cluster.refuse = True
        logs, result = await read([exited])
        assert result.log_reads == 1 and logs == {("p1", "c"): []}, "a log that cannot be read: none, no error"
        cluster.refuse = False
        logs, result = await read([exited])
        assert result.log_reads == 0, "a failed read is not repeated at once"
        clock[0] += reconcile_module.LOG_REFRESH_SECONDS
        logs, result = await read([exited])
        assert result.log_reads == 1 and logs[("p1", "c")] != [], "but after the refresh, even for an exited one"

    asyncio.run(scenario())


def test_an_exited_instance_restarted_before_its_log_is_read_gives_the_log_of_the_one_that_exited() -> None:
    """The observation saw the container exited, not yet restarted; by the time its log is read the kubelet has
    started the next instance: the log kept is the previous instance's (the crash's), not the new one's."""
    cluster = LogCluster()
    settings = OperatorOptions()
    reconciler = Reconciler(cluster, settings, Notifier.from_settings(settings))  # type: ignore[arg-type]

    def pod(instance: str, restarts: int) -> dict[str, Any]:
        return {"status": {"containerStatuses": [{"name": "c", "containerID": instance, "restartCount": restarts}]}}

    cluster.pods = {"p1": pod("containerd://next", 1), "p2": pod("containerd://same", 0)}
    restarted = LogRequest("p1", "c", previous=False, instance="containerd://exited", final=True)
    not_restarted = LogRequest("p2", "c", previous=False, instance="containerd://same", final=True)

    async def scenario() -> None:
        logs = await reconciler._read_logs(("ns", "a"), "ns", [restarted], Result())
        assert cluster.reads == [("p1", "c", False), ("p1", "c", True)]
        assert logs == {("p1", "c"): ["log of p1/c #2"]}, "the previous instance's log, read second"
        cluster.reads.clear()
        logs = await reconciler._read_logs(("ns", "b"), "ns", [not_restarted], Result())
        assert cluster.reads == [("p2", "c", False)] and logs == {("p2", "c"): ["log of p2/c #1"]}

    asyncio.run(scenario())


def _connect(name: str = "ops-file-copy-file-source-1") -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/component": "dataconnector",
        "algo.run/dataconnector": "file-source",
        "algo.run/dataconnector-version": "3.9",
        "algo.run/index": "1",
    }
    return {
        "kind": "KafkaConnect",
        "metadata": {"name": name, "generation": 1, "labels": labels},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def _connector(task_state: str, name: str = "ops-file-copy-file-source-1") -> dict[str, Any]:
    trace = "org.apache.kafka.connect.errors.ConnectException: /data/in.txt (No such file or directory)\n\tat ..."
    task = {"id": 0, "state": task_state, "worker_id": "10.0.0.5:8083"}
    if task_state == "FAILED":
        task["trace"] = trace
    return {
        "kind": "KafkaConnector",
        "metadata": {"name": name},
        "status": {"connectorStatus": {"connector": {"state": "RUNNING"}, "tasks": [task]}},
    }


@pytest.mark.parametrize("task_state", ["RUNNING", "FAILED"])
def test_a_failed_connector_task_fails_its_data_connector_though_the_connect_pods_are_ready(task_state: str) -> None:
    """The Connect cluster is Ready either way; only the KafkaConnector's copy of the REST status says the task
    that moves the data has died, and the pipeline must not read Deployed then."""
    connect = _connect()
    observed = Observed(
        owner="ops",
        name="file-copy",
        namespace="ns",
        generation=1,
        expected=[("KafkaConnect", connect["metadata"]["name"])],
        workloads=[connect],
        pods=[],
        connectors=[_connector(task_state)],
    )
    status = compute(observed, None, at=STARTED)
    (component,) = status.component_statuses
    if task_state == "RUNNING":
        assert status.status == "Deployed" and component.reason is None
        return
    assert status.status == "Error"
    assert component.reason == "ConnectorFailed"
    assert component.message == (
        "task 0 FAILED: org.apache.kafka.connect.errors.ConnectException: /data/in.txt (No such file or directory)"
    )
    assert _degraded(status)[0] == "ConnectorFailed"
