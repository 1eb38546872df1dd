"""Why a container, a pod or a data connector fails, read from its state alone. Pure.

The status (`algorun.operator.status`) reports each failure where its user looks; the rules that decide one
live here, one per kind of failure:

- A container fails when it cannot start (waiting in ErrImagePull/ImagePullBackOff,
  CreateContainerConfigError...), keeps exiting (CrashLoopBackOff: exited non-zero, waiting to be restarted, or
  restarted and not ready or not yet running for CRASH_LOOP_SETTLE_SECONDS), or runs but its readiness probe has
  failed for longer than the probe itself allows (ReadinessProbeFailing: its initial delay plus failureThreshold
  periods and a timeout). No pod event announces the moment such a time runs out, so `recheck_after` tells the
  reconciler when to look again.
- Its reason is one name per failure, whatever state the kubelet cycles through (ErrImagePull and
  ImagePullBackOff alternate; a crash loop is running, terminated and waiting in turn), so the status does not
  flap and one Event is posted per distinct failure.
- A data connector fails when its connector or a task is FAILED, though the pods of its Connect cluster are
  ready.
- Reading a failing container's log is I/O: `log_requests` says which logs are worth reading (failing
  containers that have started at least once), and `tail_lines` what of one the status keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CRASH_LOOP = "CrashLoopBackOff"
IMAGE_PULL = "ImagePullBackOff"
READINESS = "ReadinessProbeFailing"

WAITING_FAILURES = {
    "CrashLoopBackOff": CRASH_LOOP,
    "ImagePullBackOff": IMAGE_PULL,
    "ErrImagePull": IMAGE_PULL,
    "ErrImageNeverPull": "ErrImageNeverPull",
    "InvalidImageName": "InvalidImageName",
    "CreateContainerConfigError": "CreateContainerConfigError",
    "CreateContainerError": "CreateContainerError",
    "RunContainerError": CRASH_LOOP,
}
"""Waiting reasons that mean a container cannot start or keeps failing, and the failure each is reported as."""

FAILING_REASONS = frozenset(WAITING_FAILURES)

CRASH_LOOP_SETTLE_SECONDS = 60.0
"""A container that exited with an error and was restarted is still in its crash loop until the new instance has
run this long: a container without a readiness probe is ready the moment it runs, so between two crashes it
looks healthy for an instant, and a crash loop would otherwise flap between failing and recovered (and be
announced again on every restart)."""

LOG_TAIL_LINES = 15
"""Lines of a failing container's log kept in the status and the Event."""
LOG_LINE_CHARS = 240
LOG_TAIL_CHARS = 1600
"""At most this many characters of log per container in the status (the status object has a size limit)."""
LOG_READ_BYTES = 16384
"""The most the operator reads of one log (the API's limitBytes), whatever its lines' length."""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339 text, or a datetime from a client), or None when it is not one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LogRequest:
    """A failing container's log worth reading."""

    pod: str
    container: str
    previous: bool
    """Read the previous instance's log (the one that crashed), not the current one's."""
    instance: str
    """Which container instance the log belongs to (its containerID, or the restart count)."""
    final: bool
    """The instance has exited: its log never changes, so it is read once. A running instance's log grows."""


@dataclass(frozen=True)
class Failure:
    """Why one container (or a workload) fails."""

    reason: str
    message: str
    pod: str | None = None
    container: str | None = None
    log: LogRequest | None = None


def _readiness_grace(probe: dict[str, Any]) -> float:
    """How long a readiness probe needs to fail `failureThreshold` times in a row (Kubernetes' defaults)."""
    period = float(probe.get("periodSeconds") or 10)
    return (
        float(probe.get("initialDelaySeconds") or 0)
        + period * float(probe.get("failureThreshold") or 3)
        + float(probe.get("timeoutSeconds") or 1)
    )


def _not_ready_since(pod: dict[str, Any], cs: dict[str, Any]) -> datetime | None:
    """Since when a running container has been not ready: it started, or its pod last turned not ready."""
    started = parse_time(((cs.get("state") or {}).get("running") or {}).get("startedAt"))
    ready_cond = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    turned = parse_time((ready_cond or {}).get("lastTransitionTime"))
    times = [t for t in (started, turned) if t is not None]
    return max(times) if times else None


def _readiness_probe(pod: dict[str, Any], container: str) -> dict[str, Any] | None:
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            probe = spec.get("readinessProbe")
            return dict(probe) if probe else None
    return None


def _exit_text(terminated: dict[str, Any]) -> str:
    code = terminated.get("exitCode")
    reason = terminated.get("reason") or "Error"
    return f"exit code {code} ({reason})" if code is not None else reason


def _container_failure(
    pod: dict[str, Any], cs: dict[str, Any], at: datetime | None, *, init: bool = False
) -> tuple[Failure | None, float | None]:
    """Why this container fails, and in how many seconds that may change with nothing else changing: an unready
    one within its probe's allowance will count as failing, a restarted one still settling will not."""
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    name = str(cs.get("name") or "")
    state = cs.get("state") or {}
    restarts = int(cs.get("restartCount") or 0)
    last = (cs.get("lastState") or {}).get("terminated") or {}
    ready = bool(cs.get("ready"))
    previous = (
        LogRequest(pod_name, name, True, str(last.get("containerID") or f"#{restarts}"), True) if restarts > 0 else None
    )
    current_id = _instance(cs)
    where = f"{'init container' if init else 'container'} {name} of pod {pod_name}"

    def failure(reason: str, detail: str, log: LogRequest | None) -> tuple[Failure, None]:
        return Failure(reason, f"{where}: {detail}", pod_name, name, log), None

    if "waiting" in state:
        waiting = state["waiting"] or {}
        raw = str(waiting.get("reason") or "")
        if raw in WAITING_FAILURES:
            detail = raw + (f": {waiting['message']}" if waiting.get("message") else "")
            if last:
                detail += f"; restarted {restarts} times, last {_exit_text(last)}"
            return failure(WAITING_FAILURES[raw], detail, previous)
    crashed = bool(last) and last.get("exitCode") not in (None, 0)
    if "terminated" in state:
        terminated = state["terminated"] or {}
        if terminated.get("exitCode") not in (None, 0):
            log = LogRequest(pod_name, name, False, current_id, True)
            return failure(CRASH_LOOP, f"exited with {_exit_text(terminated)}; restarted {restarts} times", log)
    if crashed and not init:
        started = parse_time((state.get("running") or {}).get("startedAt"))
        up_for = (at - started).total_seconds() if started is not None and at is not None else None
        settling = up_for is not None and up_for < CRASH_LOOP_SETTLE_SECONDS
        if not ready or settling:
            again = f", running again since {started:%Y-%m-%dT%H:%M:%SZ}" if started is not None else ""
            detail = f"restarted {restarts} times, last {_exit_text(last)}{again}"
            found, _ = failure(CRASH_LOOP, detail, previous)
            return found, (CRASH_LOOP_SETTLE_SECONDS - up_for if settling and up_for is not None else None)
    if "running" in state and not ready and not init and cs.get("started") is not False:
        probe = _readiness_probe(pod, name)
        since = _not_ready_since(pod, cs)
        if probe is None or since is None or at is None:
            return None, None
        grace = _readiness_grace(probe)
        elapsed = (at - since).total_seconds()
        if elapsed < grace:
            return None, grace - elapsed
        detail = (
            f"running but not ready since {since:%Y-%m-%dT%H:%M:%SZ}: its readiness probe has failed for longer "
            f"than it allows ({grace:g}s)"
        )
        return failure(READINESS, detail, LogRequest(pod_name, name, False, current_id, False))
    return None, None


def pod_failures(pod: dict[str, Any], at: datetime | None) -> list[Failure]:
    """Every failing container of the pod (init containers first), in order."""
    status = pod.get("status") or {}
    out = []
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for cs in status.get(key) or []:
            found, _ = _container_failure(pod, cs, at, init=init)
            if found is not None:
                out.append(found)
    return out


def _instance(cs: dict[str, Any]) -> str:
    """A container status's current instance: its containerID, or its restart count while it has none."""
    return str(cs.get("containerID") or f"#{int(cs.get('restartCount') or 0)}")


def restarted_since(pod: dict[str, Any] | None, request: LogRequest) -> bool:
    """Whether the container `request` names runs another instance now than the one whose log it asks for (the
    kubelet restarted it after the observation the request comes from). False when the pod or container is gone:
    nothing better can be read then."""
    status = (pod or {}).get("status") or {}
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        if cs.get("name") == request.container:
            return _instance(cs) != request.instance
    return False


def log_requests(pods: list[dict[str, Any]], at: str | None = None) -> list[LogRequest]:
    """The logs worth reading: those of failing containers that have run at least once (a container that
    never started, e.g. its image missing, has none)."""
    moment = parse_time(at or now())
    return [f.log for pod in pods for f in pod_failures(pod, moment) if f.log is not None]


def recheck_after(pods: list[dict[str, Any]], at: str | None = None) -> float | None:
    """Seconds until a container's failure changes with time alone: a running, unready one has failed its
    readiness probe for longer than the probe allows, or a restarted one has run for CRASH_LOOP_SETTLE_SECONDS
    (nothing in the cluster changes at those moments, so no event would bring the reconciler back)."""
    moment = parse_time(at or now())
    waits = [
        wait
        for pod in pods
        for cs in (pod.get("status") or {}).get("containerStatuses") or []
        for _, wait in [_container_failure(pod, cs, moment)]
        if wait is not None
    ]
    return min(waits) if waits else None


def tail_lines(text: str) -> list[str]:
    """The last lines of a log as the status keeps them: at most LOG_TAIL_LINES lines of LOG_LINE_CHARS
    printable characters, LOG_TAIL_CHARS in all, the newest kept when something must go."""
    lines = []
    for raw in text.splitlines():
        line = "".join(ch if ch.isprintable() else " " for ch in raw.replace("\t", "    ")).rstrip()
        lines.append(line if len(line) <= LOG_LINE_CHARS else line[: LOG_LINE_CHARS - 3] + "...")
    while lines and not lines[-1]:
        lines.pop()
    lines = lines[-LOG_TAIL_LINES:]
    while lines and sum(len(line) + 1 for line in lines) > LOG_TAIL_CHARS:
        lines.pop(0)
    return lines


def connector_failure(connector: dict[str, Any] | None) -> Failure | None:
    """A KafkaConnector whose connector or a task is FAILED, from the Connect REST status Strimzi copies into
    `status.connectorStatus`: the Connect cluster's pods can be ready while the connector they run has failed
    (a missing file, a refused record), and only this says so. The message is the trace's first line."""
    rest = ((connector or {}).get("status") or {}).get("connectorStatus") or {}
    parts = [("connector", rest.get("connector") or {})]
    parts += [(f"task {t.get('id', '?')}", t) for t in rest.get("tasks") or []]
    for what, part in parts:
        if part.get("state") == "FAILED":
            trace = str(part.get("trace") or "no trace").strip().splitlines()
            return Failure("ConnectorFailed", f"{what} FAILED: {trace[0] if trace else 'no trace'}")
    return None
