"""The PipelineDeployment status, assembled from what exists in the cluster. Pure.

One entry per component (each Deployment/StatefulSet the pipeline renders, and each KafkaConnect) and per pod,
with the fields the NotifMessage carries, plus Kubernetes-style conditions (Ready, Progressing, Degraded) and
`observedGeneration`. The expected components are those rendered, so a pipeline without endpoint paths can be
Deployed. Whether a container or a connector fails is decided in `algorun.operator.failures`; this module puts
each failure where its user looks:

- A failing component is in Error with the failure's reason and message, and the pipeline is Degraded with that
  reason (or ComponentFailing when the components fail for different reasons).
- The component, its pod status and its Event carry the last lines of the failing container's log (the
  previous instance's for a restarted one), as the reconciler read them into `Observed.logs`.
- `component_events` posts one Event per distinct failure: the stored status remembers what was already
  reported, across operator restarts.

The names of `failures` its callers read with the status (the log tail's limits, `log_requests`,
`recheck_after`) are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from algorun.api.enums import ComponentType, DeploymentStatus, NotifType
from algorun.api.resources import DeploymentStatusMessage, NotifMessage
from algorun.api.status import ComponentStatus, Condition, ContainerStatus, PipelineDeploymentStatus, PodStatus
from algorun.operator.failures import CRASH_LOOP_SETTLE_SECONDS as CRASH_LOOP_SETTLE_SECONDS
from algorun.operator.failures import LOG_LINE_CHARS as LOG_LINE_CHARS
from algorun.operator.failures import LOG_TAIL_CHARS as LOG_TAIL_CHARS
from algorun.operator.failures import LOG_TAIL_LINES as LOG_TAIL_LINES
from algorun.operator.failures import Failure, connector_failure, now, parse_time, pod_failures
from algorun.operator.failures import LogRequest as LogRequest
from algorun.operator.failures import log_requests as log_requests
from algorun.operator.failures import recheck_after as recheck_after
from algorun.operator.failures import tail_lines as tail_lines
from algorun.operator.render.labels import ALGO, ALGO_VERSION, COMPONENT, DATACONNECTOR, DATACONNECTOR_VERSION, INDEX

EVENT_MESSAGE_CHARS = 1024
"""Kubernetes truncates longer Event messages; the log tail is cut from its oldest line to fit."""


@dataclass
class Observed:
    """What the status is computed from."""

    owner: str
    name: str
    namespace: str
    generation: int | None
    expected: list[tuple[str, str]]
    """(kind, name) of every workload the pipeline should have."""
    workloads: list[dict[str, Any]]
    """Live Deployments, StatefulSets and KafkaConnects of the pipeline."""
    pods: list[dict[str, Any]]
    connectors: list[dict[str, Any]] = field(default_factory=list)
    """Live KafkaConnectors (each named like its KafkaConnect)."""
    algo_count: int = 0
    problems: list[str] = field(default_factory=list)
    """Why the spec cannot be realised (Degraded, status Error)."""
    problem_reason: str = "InvalidSpec"
    """The Degraded reason for `problems` (StrimziMissing when the cluster serves no Strimzi API...)."""
    waiting: list[str] = field(default_factory=list)
    """What the operator waits for (Progressing)."""
    deleting: bool = False
    logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(pod, container) -> the last lines of its log, as read for `log_requests`."""


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _identify(labels: dict[str, str]) -> tuple[ComponentType | None, str | None, str | None, int | None]:
    component = labels.get(COMPONENT)
    index = int(labels[INDEX]) if labels.get(INDEX, "").isdigit() else None
    if component == "algo":
        return ComponentType.ALGO, labels.get(ALGO, "").replace(".", "/", 1) or None, labels.get(ALGO_VERSION), index
    if component == "dataconnector":
        return ComponentType.DATA_CONNECTOR, labels.get(DATACONNECTOR), labels.get(DATACONNECTOR_VERSION), index
    if component == "endpoint":
        return ComponentType.ENDPOINT, "endpoint", None, None
    if component == "hook":
        return ComponentType.EVENT_HOOK, "hook", None, None
    return None, None, None, None


def pod_status(
    pod: dict[str, Any], at: datetime | None = None, logs: dict[tuple[str, str], list[str]] | None = None
) -> PodStatus:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ctype, name, version, index = _identify(_labels(pod))
    logs = logs or {}
    failures = {f.container: f for f in pod_failures(pod, at)}
    containers = []
    phase = status.get("phase") or "Pending"
    restarts = 0
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        restarts += int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        messages: list[str] = []
        if "waiting" in state:
            reason = state["waiting"].get("reason") or "Waiting"
            if state["waiting"].get("message"):
                messages.append(state["waiting"]["message"])
        elif "terminated" in state:
            reason = state["terminated"].get("reason") or "Terminated"
            if state["terminated"].get("message"):
                messages.append(state["terminated"]["message"])
        else:
            reason = "Running" if "running" in state else "Unknown"
        container = str(cs.get("name", ""))
        failed = failures.get(container)
        if failed is not None:
            messages.append(failed.message)
        tail = logs.get((str(meta.get("name") or ""), container), []) if failed is not None else []
        containers.append(ContainerStatus(name=container, status=reason, messages=messages, log_tail=tail))
    if failures:
        phase = next(iter(failures.values())).reason
    return PodStatus(
        component_type=ctype,
        name=name,
        version=version,
        index=index,
        pod_name=meta.get("name"),
        status=phase,
        container_statuses=containers,
        restarts=restarts,
        ip=status.get("podIP"),
        node=(pod.get("spec") or {}).get("nodeName"),
        created_timestamp=meta.get("creationTimestamp"),
    )


@dataclass(frozen=True)
class _Pod:
    status: PodStatus
    failures: list[Failure]


def _failing(workload: dict[str, Any], pods: list[_Pod]) -> Failure | None:
    """Why a workload is failing (its first failing pod, else its own conditions), or None."""
    kind = workload.get("kind")
    ctype, name, _, index = _identify(_labels(workload))
    for pod in pods:
        s = pod.status
        if pod.failures and s.component_type == ctype and s.name == name and s.index == index:
            return pod.failures[0]
    for cond in (workload.get("status") or {}).get("conditions") or []:
        if (
            kind == "Deployment"
            and cond.get("type") == "Progressing"
            and cond.get("reason") == "ProgressDeadlineExceeded"
        ):
            return Failure("ProgressDeadlineExceeded", cond.get("message") or "progress deadline exceeded")
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Failure(str(cond.get("reason") or "ReplicaFailure"), cond.get("message") or "replica failure")
    return None


def component_status(
    workload: dict[str, Any],
    pods: list[_Pod],
    logs: dict[tuple[str, str], list[str]] | None = None,
    connector: dict[str, Any] | None = None,
) -> ComponentStatus:
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    ctype, name, version, index = _identify(_labels(workload))
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    if workload.get("kind") == "KafkaConnect":
        ready_cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        is_ready = bool(ready_cond and ready_cond.get("status") == "True")
        ready = desired if is_ready else 0
        current = available = up_to_date = int(status.get("replicas") or ready)
    else:
        ready = int(status.get("readyReplicas") or 0)
        current = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or (ready if workload.get("kind") == "StatefulSet" else 0))
        up_to_date = int(status.get("updatedReplicas") or 0)
    generation_seen = status.get("observedGeneration", 0) >= meta.get("generation", 0)
    failure = _failing(workload, pods) or connector_failure(connector)
    if failure is not None:
        state = DeploymentStatus.ERROR
    elif ready >= desired and generation_seen and (workload.get("kind") == "KafkaConnect" or up_to_date >= desired):
        state = DeploymentStatus.DEPLOYED
    else:
        state = DeploymentStatus.PROGRESSING
    tail = (logs or {}).get((failure.pod or "", failure.container or ""), []) if failure else []
    return ComponentStatus(
        component_type=ctype,
        name=name,
        version=version,
        index=index,
        deployment_name=meta.get("name"),
        status=state,
        desired=desired,
        current=current,
        up_to_date=up_to_date,
        available=available,
        ready=ready,
        created_timestamp=meta.get("creationTimestamp"),
        reason=failure.reason if failure else None,
        message=failure.message if failure else None,
        log_tail=tail,
    )


def component_label(comp: ComponentStatus) -> str:
    """How a component is named to its user: `algo demo/uppercase:1[1]`, `endpoint`, `event hook`..."""
    if comp.component_type == ComponentType.ALGO:
        return f"algo {comp.name}:{comp.version}[{comp.index}]"
    if comp.component_type == ComponentType.DATA_CONNECTOR:
        return f"data connector {comp.name}:{comp.version}[{comp.index}]"
    if comp.component_type == ComponentType.EVENT_HOOK:
        return "event hook"
    if comp.component_type == ComponentType.ENDPOINT:
        return "endpoint"
    return str(comp.deployment_name)


def _condition(
    old: list[Condition], type_: str, status: bool, reason: str, message: str, generation: int | None, at: str
) -> Condition:
    value = "True" if status else "False"
    previous = next((c for c in old if c.type == type_), None)
    since = previous.last_transition_time if previous and previous.status == value else at
    return Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def compute(
    observed: Observed, old: PipelineDeploymentStatus | None, at: str | None = None
) -> PipelineDeploymentStatus:
    at = at or now()
    moment = parse_time(at)
    pods = [
        _Pod(pod_status(p, moment, observed.logs), pod_failures(p, moment))
        for p in sorted(observed.pods, key=lambda p: str((p.get("metadata") or {}).get("name") or ""))
    ]
    by_key = {(w.get("kind"), (w.get("metadata") or {}).get("name")): w for w in observed.workloads}
    connectors = {(c.get("metadata") or {}).get("name"): c for c in observed.connectors}
    components = [
        component_status(
            w,
            pods,
            observed.logs,
            connectors.get((w.get("metadata") or {}).get("name")) if w.get("kind") == "KafkaConnect" else None,
        )
        for w in sorted(observed.workloads, key=_sort_key)
    ]
    missing = [f"{kind} {name}" for kind, name in observed.expected if (kind, name) not in by_key]
    failing = [c for c in components if c.reason]
    errors = [f"{component_label(c)} ({c.deployment_name}): {c.reason}: {c.message}" for c in failing]
    pending = [
        f"{c.deployment_name} ({c.ready}/{c.desired} ready)"
        for c in components
        if c.status == DeploymentStatus.PROGRESSING
    ]
    if observed.deleting:
        overall = DeploymentStatus.TERMINATED
    elif observed.problems or errors:
        overall = DeploymentStatus.ERROR
    elif missing or pending or observed.waiting:
        overall = DeploymentStatus.PROGRESSING
    else:
        overall = DeploymentStatus.DEPLOYED
    gen = observed.generation
    prior = old.conditions if old else []
    ready_total = sum(1 for c in components if c.status == DeploymentStatus.DEPLOYED)
    summary = f"{ready_total} of {len(observed.expected)} components ready"
    if overall == DeploymentStatus.DEPLOYED:
        ready_msg, ready_reason = f"all {len(observed.expected)} components are ready", "Deployed"
    else:
        ready_msg, ready_reason = summary, str(overall.value)
    waiting_on = [*observed.waiting, *(f"creating {m}" for m in missing), *(f"waiting for {p}" for p in pending)]
    progressing = overall == DeploymentStatus.PROGRESSING
    degraded_msg = "; ".join([*observed.problems, *errors])
    conditions = [
        _condition(prior, "Ready", overall == DeploymentStatus.DEPLOYED, ready_reason, ready_msg, gen, at),
        _condition(
            prior,
            "Progressing",
            progressing,
            "RollingOut"
            if progressing
            else ("Complete" if overall == DeploymentStatus.DEPLOYED else str(overall.value)),
            "; ".join(waiting_on) if progressing else summary,
            gen,
            at,
        ),
        _condition(
            prior,
            "Degraded",
            bool(degraded_msg),
            _degraded_reason(observed, failing),
            degraded_msg or "no problems",
            gen,
            at,
        ),
    ]
    return PipelineDeploymentStatus(
        deployment_owner=observed.owner,
        deployment_name=observed.name,
        status=overall,
        component_statuses=components,
        pod_statuses=[p.status for p in pods],
        conditions=conditions,
        observed_generation=gen,
        algo_count=observed.algo_count,
    )


def _degraded_reason(observed: Observed, failing: list[ComponentStatus]) -> str:
    """Why the pipeline is degraded, in one word (a printer column shows it): the spec's problem first, then
    the components' failure when they all share it (ImagePullBackOff...), else ComponentFailing."""
    if observed.problems:
        return observed.problem_reason
    reasons = {c.reason for c in failing}
    if len(reasons) == 1:
        return str(reasons.pop())
    return "ComponentFailing" if reasons else "AsExpected"


@dataclass(frozen=True)
class ComponentEvent:
    """An Event about one component: a Warning when it starts failing, Normal when it recovers."""

    type: str
    reason: str
    message: str


def component_events(old: PipelineDeploymentStatus | None, new: PipelineDeploymentStatus) -> list[ComponentEvent]:
    """One Warning per distinct failure (component + reason) and one Normal `ComponentRecovered` when it ends.

    What was already reported is the stored status (`old`): a failure whose component had the same reason there
    was announced by the reconcile that wrote it. So a failure is announced once, not on every reconcile, and
    not again after an operator restart; a component that failed with another reason is announced again.
    """
    before = {c.deployment_name: c for c in (old.component_statuses if old else [])}
    out = []
    for comp in new.component_statuses:
        previous = before.get(comp.deployment_name)
        had = previous.reason if previous else None
        if comp.reason and comp.reason != had:
            out.append(ComponentEvent("Warning", comp.reason, failure_message(comp)))
        elif had and not comp.reason:
            text = f"{component_label(comp)} ({comp.deployment_name}) no longer fails ({had})"
            out.append(ComponentEvent("Normal", "ComponentRecovered", text))
    return out


def failure_message(comp: ComponentStatus, limit: int = EVENT_MESSAGE_CHARS) -> str:
    """The component, its failure and the last lines of its log, within `limit` characters: the head is cut
    first to half the limit, then the log loses its oldest lines (the last ones say why it ended)."""
    head = f"{component_label(comp)} ({comp.deployment_name}): {comp.reason}: {comp.message}"
    if not comp.log_tail:
        return head if len(head) <= limit else head[: limit - 3] + "..."
    if len(head) > limit // 2:
        head = head[: limit // 2 - 3] + "..."
    intro = "\nlast lines of its log:"
    lines = list(comp.log_tail)
    while lines and len(head) + len(intro) + sum(len(line) + 1 for line in lines) > limit:
        lines.pop(0)
    return head + (intro + "".join("\n" + line for line in lines) if lines else "")


def _sort_key(obj: dict[str, Any]) -> tuple[str, str]:
    return str(obj.get("kind")), str((obj.get("metadata") or {}).get("name"))


def parse_status(raw: dict[str, Any] | None) -> PipelineDeploymentStatus | None:
    """The stored status, or None when absent or not ours (fields we do not know are ignored)."""
    if not raw:
        return None
    known = {f.alias or name for name, f in PipelineDeploymentStatus.model_fields.items()}
    try:
        return PipelineDeploymentStatus.model_validate({k: v for k, v in raw.items() if k in known})
    except ValueError:
        return None


def status_patch(new: PipelineDeploymentStatus, old_raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """The merge patch that turns the stored status into `new`, or None when nothing changed."""
    wanted = new.to_json()
    known = {f.alias or name for name, f in PipelineDeploymentStatus.model_fields.items()}
    current = {k: v for k, v in (old_raw or {}).items() if k in known}
    if current == wanted:
        return None
    patch: dict[str, Any] = dict(wanted)
    for key in current:
        if key not in wanted:
            patch[key] = None
    return {"status": patch}


def notifications(
    old: PipelineDeploymentStatus | None, new: PipelineDeploymentStatus, namespace: str, at: str | None = None
) -> list[NotifMessage]:
    """The NotifMessages for what really changed: the overall status, a component, a pod (docs/compat.md)."""
    at = at or now()

    def message(kind: NotifType, components: list[ComponentStatus], pods: list[PodStatus]) -> NotifMessage:
        return NotifMessage(
            message_timestamp=at,
            type=kind,
            deployment_status_message=DeploymentStatusMessage(
                deployment_owner=new.deployment_owner,
                deployment_name=new.deployment_name,
                deployment_namespace=namespace,
                status=new.status,
                component_status=components,
                pod_status=pods,
            ),
        )

    out: list[NotifMessage] = []
    if old is None or old.status != new.status:
        out.append(message(NotifType.PIPELINE_DEPLOYMENT_STATUS, new.component_statuses, []))
    old_components = {c.deployment_name: c for c in (old.component_statuses if old else [])}
    for comp in new.component_statuses:
        if old_components.get(comp.deployment_name) != comp:
            out.append(message(NotifType.PIPELINE_DEPLOYMENT, [comp], []))
    old_pods = {p.pod_name: p for p in (old.pod_statuses if old else [])}
    for pod in new.pod_statuses:
        if old_pods.get(pod.pod_name) != pod:
            out.append(message(NotifType.PIPELINE_DEPLOYMENT_POD, [], [pod]))
    return out


def deleted_notification(owner: str, name: str, namespace: str, at: str | None = None) -> NotifMessage:
    return NotifMessage(
        message_timestamp=at or now(),
        type=NotifType.PIPELINE_DEPLOYMENT_DELETED,
        deployment_status_message=DeploymentStatusMessage(
            deployment_owner=owner,
            deployment_name=name,
            deployment_namespace=namespace,
            status=DeploymentStatus.TERMINATED,
        ),
    )
