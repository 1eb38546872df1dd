"""The PipelineDeployment status, derived from what exists in the cluster. Pure.

Per component (each Deployment/StatefulSet the pipeline renders, and each KafkaConnect) and per pod, as the
original reported them, plus Kubernetes-style conditions (Ready, Progressing, Degraded) and
`observedGeneration`. Fixed from the original: a waiting container's reason (CrashLoopBackOff,
ImagePullBackOff...) is reported and makes the component `Error` (the original could never detect it); the
expected component count comes from what was rendered (a pipeline without endpoint paths can be Deployed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from algorun.api.enums import ComponentType, DeploymentStatus, NotifType
from algorun.api.resources import DeploymentStatusMessage, NotifMessage
from algorun.api.status import ComponentStatus, Condition, ContainerStatus, PipelineDeploymentStatus, PodStatus
from algorun.operator.render.labels import ALGO, ALGO_VERSION, COMPONENT, DATACONNECTOR, DATACONNECTOR_VERSION, INDEX

FAILING_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName"}
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    algo_count: int = 0
    problems: list[str] = field(default_factory=list)
    """Why the spec cannot be realised (Degraded, status Error)."""
    waiting: list[str] = field(default_factory=list)
    """What the operator waits for (Progressing)."""
    deleting: bool = False


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


def pod_status(pod: dict[str, Any]) -> PodStatus:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ctype, name, version, index = _identify(_labels(pod))
    containers = []
    phase = status.get("phase") or "Pending"
    restarts = 0
    for cs in status.get("containerStatuses") or []:
        restarts += int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        messages: list[str] = []
        if "waiting" in state:
            reason = state["waiting"].get("reason") or "Waiting"
            if state["waiting"].get("message"):
                messages.append(state["waiting"]["message"])
            if reason in FAILING_REASONS:
                phase = reason
        elif "terminated" in state:
            reason = state["terminated"].get("reason") or "Terminated"
            if state["terminated"].get("message"):
                messages.append(state["terminated"]["message"])
        else:
            reason = "Running" if "running" in state else "Unknown"
        containers.append(ContainerStatus(name=cs.get("name", ""), status=reason, messages=messages))
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


def _failing(workload: dict[str, Any], pods: list[PodStatus]) -> str | None:
    """Why a workload is failing, or None."""
    kind = workload.get("kind")
    ctype, name, _, index = _identify(_labels(workload))
    for pod in pods:
        if pod.component_type == ctype and pod.name == name and pod.index == index and pod.status in FAILING_REASONS:
            return f"pod {pod.pod_name} is in {pod.status}"
    for cond in (workload.get("status") or {}).get("conditions") or []:
        if (
            kind == "Deployment"
            and cond.get("type") == "Progressing"
            and cond.get("reason") == "ProgressDeadlineExceeded"
        ):
            return cond.get("message") or "progress deadline exceeded"
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return cond.get("message") or "replica failure"
    return None


def component_status(workload: dict[str, Any], pods: list[PodStatus]) -> ComponentStatus:
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
    if _failing(workload, pods):
        state = DeploymentStatus.ERROR
    elif ready >= desired and generation_seen and (workload.get("kind") == "KafkaConnect" or up_to_date >= desired):
        state = DeploymentStatus.DEPLOYED
    else:
        state = DeploymentStatus.PROGRESSING
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
    )


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
    pods = sorted((pod_status(p) for p in observed.pods), key=lambda p: p.pod_name or "")
    by_key = {(w.get("kind"), (w.get("metadata") or {}).get("name")): w for w in observed.workloads}
    components = [component_status(w, pods) for w in sorted(observed.workloads, key=_sort_key)]
    missing = [f"{kind} {name}" for kind, name in observed.expected if (kind, name) not in by_key]
    reasons = {(w.get("metadata") or {}).get("name"): _failing(w, pods) for w in observed.workloads}
    errors = [f"{name}: {why}" for name, why in sorted(reasons.items(), key=lambda i: str(i[0])) if why]
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
    degraded_reason = "InvalidSpec" if observed.problems else ("ComponentFailing" if errors else "AsExpected")
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
        _condition(prior, "Degraded", bool(degraded_msg), degraded_reason, degraded_msg or "no problems", gen, at),
    ]
    return PipelineDeploymentStatus(
        deployment_owner=observed.owner,
        deployment_name=observed.name,
        status=overall,
        component_statuses=components,
        pod_statuses=pods,
        conditions=conditions,
        observed_generation=gen,
        algo_count=observed.algo_count,
    )


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
    """The original's messages for what really changed: the overall status, a component, a pod."""
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
