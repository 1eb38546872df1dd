"""Bad input on a real cluster: an algo whose image does not exist, one whose entrypoint crashes, one that never
becomes ready. Each must show in the PipelineDeployment itself, where its user looks (`kubectl get pd`, its
status, `kubectl describe pd`'s Events), not only in `kubectl describe pod`: the component, the reason, and the
last lines of the container's log when it has run. One Warning Event per failure, not one per reconcile.

Each pipeline is text-transform cut down to its endpoint and its HTTP algo `demo/uppercase:1[1]` (two pods, so
the three tests stay quick on two cores), with that algo broken one way, in its own namespace, deleted at the end.
"""

from __future__ import annotations

import json
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.e2e import Operator, Receiver, eventually

ALGO = "demo/uppercase"
LABEL = "algo demo/uppercase:1[1]"
CONTAINER = "uppercase"
TIMEOUT = 150.0


def _cut_down(
    operator: Operator, receiver: Receiver, name: str, breaks: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """text-transform with only its endpoint and the uppercase algo (fed by the endpoint), broken by `breaks`."""
    pd = operator.prepare("text-transform", receiver)
    pd["metadata"]["name"] = name
    spec = pd["spec"]
    spec["deploymentName"] = name
    (algo,) = [a for a in spec["algos"] if a["spec"]["name"] == "uppercase"]
    spec["algos"] = [algo]
    spec["pipes"] = [p for p in spec["pipes"] if p["sourceName"] == "Endpoint"]
    spec.pop("eventHook", None)
    breaks(algo)
    return pd


@pytest.fixture
def deployed(operator: Operator, receiver: Receiver, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Apply a broken pipeline in a namespace of its own; the namespace is deleted after the test."""
    namespaces: list[str] = []

    def deploy(prefix: str, breaks: Callable[[dict[str, Any]], None]) -> tuple[str, dict[str, Any]]:
        namespace = operator.api.create_namespace(prefix)
        namespaces.append(namespace)
        pd = _cut_down(operator, receiver, prefix, breaks)
        operator.apply(pd, namespace)
        return namespace, pd

    yield deploy
    for namespace in namespaces:
        operator.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def _warnings(operator: Operator, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Warning Events about the PipelineDeployment (the kubelet's own are about pods)."""
    selector = urllib.parse.quote(f"involvedObject.name={name},involvedObject.kind=PipelineDeployment,type=Warning")
    status, events = operator.api.request("GET", f"/api/v1/namespaces/{namespace}/events?fieldSelector={selector}")
    assert status == 200, events
    return list(events["items"])


def _failure(
    operator: Operator, namespace: str, name: str, reasons: set[str], with_log: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Wait until the algo's component fails with one of `reasons` (and a log tail, `with_log`) and its Warning
    Event is posted; (status, component status, event)."""

    def seen() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
        status = operator.pipeline(namespace, name).get("status") or {}
        comp = next((c for c in status.get("componentStatuses") or [] if c.get("name") == ALGO), None)
        if comp is None or comp.get("reason") not in reasons or (with_log and not comp.get("logTail")):
            return None
        events = [e for e in _warnings(operator, namespace, name) if e["reason"] == comp["reason"]]
        return (status, comp, events[0]) if events else None

    return eventually(
        seen, TIMEOUT, f"{ALGO} failing with {sorted(reasons)} and its Event", lambda: _seen(operator, namespace, name)
    )


def _seen(operator: Operator, namespace: str, name: str) -> str:
    status = operator.pipeline(namespace, name).get("status") or {}
    events = [(e["reason"], e["message"]) for e in _warnings(operator, namespace, name)]
    components = json.dumps(status.get("componentStatuses"), indent=1)
    return f"{operator.describe(namespace, name)}\ncomponents: {components}\nwarning events: {events}"


def _printed_row(operator: Operator, namespace: str, name: str) -> dict[str, Any]:
    """The PipelineDeployment as `kubectl get pd` prints it: the API server's Table of the printer columns."""
    api = operator.api
    url = f"{api.server}/apis/algo.run/v1beta1/namespaces/{namespace}/pipelinedeployments/{name}"
    request = urllib.request.Request(url, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    context: ssl.SSLContext = api.ssl_context()
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        table = json.loads(response.read())
    columns = [c["name"] for c in table["columnDefinitions"]]
    return dict(zip(columns, table["rows"][0]["cells"], strict=True))


def _reconciled_again(operator: Operator, namespace: str, pd: dict[str, Any]) -> None:
    """Make the operator reconcile the failing pipeline again and wait until it has: a change of a spec field that
    renders nothing (pipelineVersionTag) bumps the generation, which the status's observedGeneration follows."""
    name = pd["metadata"]["name"]
    poked = {**pd, "spec": {**pd["spec"], "pipelineVersionTag": "reconcile-again"}}
    operator.apply(poked, namespace)
    generation = operator.pipeline(namespace, name)["metadata"]["generation"]
    eventually(
        lambda: (operator.pipeline(namespace, name).get("status") or {}).get("observedGeneration") == generation,
        60,
        f"the reconcile of generation {generation}",
        lambda: _seen(operator, namespace, name),
    )


def _check_reported(
    operator: Operator, namespace: str, pd: dict[str, Any], reason: str, status: dict[str, Any], event: dict[str, Any]
) -> None:
    """What every failure must show: Error, Degraded with the reason, the printer columns, the Event naming the
    component, and one Event only after a further reconcile."""
    name = pd["metadata"]["name"]
    assert status["status"] == "Error"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", reason), degraded
    assert LABEL in degraded["message"] and reason in degraded["message"], degraded
    row = _printed_row(operator, namespace, name)
    assert (row["Status"], row["Reason"]) == ("Error", reason), row
    assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "PipelineDeployment"
    assert event["message"].startswith(f"{LABEL} ("), event["message"]
    assert f"container {CONTAINER} of pod " in event["message"], event["message"]
    _reconciled_again(operator, namespace, pd)
    same = [e for e in _warnings(operator, namespace, name) if e["reason"] == reason]
    assert len(same) == 1 and same[0].get("count", 1) == 1, [(e["reason"], e["message"]) for e in same]


def test_a_missing_image_shows_in_status_and_events(operator: Operator, deployed: Callable[..., Any]) -> None:
    """The tag was never built and no registry is reachable: the kubelet's pull fails (ErrImagePull, then
    ImagePullBackOff, in turn), reported as one failure; a container that never ran has no log."""

    def missing_image(algo: dict[str, Any]) -> None:
        algo["spec"]["versions"][0]["image"]["tag"] = "never-built"

    namespace, pd = deployed("e2e-noimage", missing_image)
    status, comp, event = _failure(operator, namespace, pd["metadata"]["name"], {"ImagePullBackOff"}, False)
    assert comp["status"] == "Error" and "algorun/examples:never-built" in comp["message"], comp
    assert comp.get("logTail", []) == []
    assert event["reason"] == "ImagePullBackOff" and "never-built" in event["message"], event["message"]
    _check_reported(operator, namespace, pd, "ImagePullBackOff", status, event)


def test_a_crash_looping_algo_shows_in_status_and_events_with_its_log(
    operator: Operator, deployed: Callable[..., Any]
) -> None:
    """The entrypoint names a script that is not in the image: python exits 2 saying so, the kubelet restarts it
    (CrashLoopBackOff); the status and the Event carry python's last words."""

    def bad_entrypoint(algo: dict[str, Any]) -> None:
        algo["spec"]["versions"][0]["entrypoint"] = "python3 algos/no_such_algo.py --port 18901"

    namespace, pd = deployed("e2e-crash", bad_entrypoint)
    status, comp, event = _failure(operator, namespace, pd["metadata"]["name"], {"CrashLoopBackOff"}, True)
    said = "no_such_algo.py': [Errno 2] No such file or directory"
    assert any(said in line for line in comp["logTail"]), comp
    assert "exit code 2" in comp["message"], comp
    (pod,) = [p for p in status["podStatuses"] if p.get("name") == ALGO]
    (algo_container,) = [c for c in pod["containerStatuses"] if c["name"] == CONTAINER]
    assert any(said in line for line in algo_container["logTail"]), pod
    assert "last lines of its log:" in event["message"] and said in event["message"], event["message"]
    _check_reported(operator, namespace, pd, "CrashLoopBackOff", status, event)


def test_an_algo_that_never_becomes_ready_shows_in_status_and_events_with_its_log(
    operator: Operator, deployed: Callable[..., Any]
) -> None:
    """The algo runs but never listens: its readiness probe (every second, two failures allowed) keeps failing
    while the container runs; once the probe's allowance has passed it is a failure, with what it printed."""

    def never_ready(algo: dict[str, Any]) -> None:
        algo["spec"]["versions"][0]["entrypoint"] = (
            "python3 -c \"import time; print('loading a model that never loads', flush=True); time.sleep(3600)\""
        )
        algo["readinessProbe"] = {"tcpSocket": {"port": 18901}, "periodSeconds": 1, "failureThreshold": 2}

    namespace, pd = deployed("e2e-unready", never_ready)
    status, comp, event = _failure(operator, namespace, pd["metadata"]["name"], {"ReadinessProbeFailing"}, True)
    assert "loading a model that never loads" in comp["logTail"], comp
    assert "not ready since" in comp["message"], comp
    (pod,) = [p for p in status["podStatuses"] if p.get("name") == ALGO]
    assert pod["restarts"] == 0 and pod["status"] == "ReadinessProbeFailing", pod
    assert "loading a model that never loads" in event["message"], event["message"]
    _check_reported(operator, namespace, pd, "ReadinessProbeFailing", status, event)
