"""One PipelineDeployment's reconcile and cleanup, independent of kopf (the handlers only call in here).

reconcile: read the object and the templates it references -> validate -> read which Strimzi API the cluster
serves (cached; `algorun.operator.discovery`) and the cluster facts -> render -> converge (apply what differs,
prune what is gone) -> ensure the bucket -> status (written through the status subresource only when it changed)
-> notifications and Events for what changed. A spec that cannot be realised, or a cluster without Strimzi,
changes nothing in the cluster and is reported as Degraded, with an Event; no exception escapes for it.

A failing component (`algorun.operator.status` says when) gets one Warning Event per distinct failure, carrying
the last lines of its container's log. Logs are read (`pods/log`) only for failing containers, and at a bounded
rate: an exited instance's log is read once (it cannot change), a running one's at most every
LOG_REFRESH_SECONDS, and at most MAX_LOG_READS per reconcile; a read that fails is tried again only after
LOG_REFRESH_SECONDS. When an unready container will have outlived its readiness probe's allowance, a reconcile is
scheduled for that moment (nothing in the cluster changes then, so no watch event would come).

Requests are coalesced per object (a burst of child events makes one reconcile) and serialised per object.

The module is longer than most (about 575 lines) because its sections (scheduling, reconcile, status and Events,
deletion) share one per-object state: the lock, the set of known objects, the log cache and the scheduled
rechecks; the pure parts it calls live in `render`, `apply`, `status` and `failures`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lightkube import ApiError
from pydantic import ValidationError

from algorun.api.documents import parse_resource
from algorun.api.enums import KafkaAuthType
from algorun.api.loader import Document
from algorun.api.problems import from_validation_error
from algorun.api.resources import Algo, DataConnector, PipelineDeployment
from algorun.api.topology import Catalog, build_topology
from algorun.api.validation import validate_spec
from algorun.operator import events, kinds
from algorun.operator.apis import STRIMZI_MISSING
from algorun.operator.apply import ApplyResult, Cluster, MissingKind, NameTaken, converge, delete_owned
from algorun.operator.bucket import ensure_bucket, parse_connection_string
from algorun.operator.discovery import Discovery
from algorun.operator.failures import (
    LOG_READ_BYTES,
    LOG_TAIL_LINES,
    LogRequest,
    log_requests,
    now,
    recheck_after,
    restarted_since,
    tail_lines,
)
from algorun.operator.metrics import RECONCILE_SECONDS, RECONCILES
from algorun.operator.notify import Notifier
from algorun.operator.render import ClusterFacts, identity_of, render
from algorun.operator.render.labels import Identity, owned_selector
from algorun.operator.settings import OperatorOptions
from algorun.operator.status import (
    Observed,
    component_events,
    compute,
    deleted_notification,
    notifications,
    parse_status,
    status_patch,
)

log = logging.getLogger(__name__)

DELETE_TOPICS_ANNOTATION = "algo.run/delete-topics"
LEGACY_FINALIZER = "finalizer.pipelineDeployment.algorun"

Key = tuple[str, str]

LOG_REFRESH_SECONDS = 60.0
"""A running, failing container's log is read again at most this often."""
MAX_LOG_READS = 4
"""Log reads per reconcile; the others wait for the next reconcile (a pipeline with many failing pods does not
turn one reconcile into a burst of requests to the kubelets)."""


@dataclass(frozen=True)
class _LogEntry:
    lines: list[str]
    read_at: float
    complete: bool
    """The read succeeded (a failed one is tried again after LOG_REFRESH_SECONDS, even for an exited instance)."""


@dataclass
class Result:
    """What one reconcile did (tests and the benchmark read it)."""

    outcome: ApplyResult | None = None
    problems: list[str] = field(default_factory=list)
    status: str | None = None
    status_written: bool = False
    problem_reason: str = "InvalidSpec"
    """Why `problems` arose, in one word: the Degraded condition's reason and the Warning Event's
    (InvalidSpec; StrimziMissing when the cluster serves no Strimzi API; MissingCRD when a kind the pipeline
    needs is not served; APIRefused when the API server refused a change)."""
    log_reads: int = 0


def _problem_text(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return f"the API server refused a change: {exc.status.message}"
    return str(exc)


class Reconciler:
    """Reconciles each known PipelineDeployment on request: requests are coalesced and run one at a time per
    object, and the state they share (locks, log cache, rechecks, refused names) lives here (module docstring)."""

    def __init__(
        self,
        cluster: Cluster,
        settings: OperatorOptions,
        notifier: Notifier | None = None,
        *,
        debounce: float = 0.2,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.notifier = notifier or Notifier.from_settings(settings)
        self.debounce = debounce
        self.known: set[Key] = set()
        self.secret_users: dict[str, set[Key]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._pending: dict[Key, asyncio.Task[None]] = {}
        self._buckets: set[str] = set()
        self._last_problem: dict[Key, str] = {}
        self._logs: dict[Key, dict[LogRequest, _LogEntry]] = {}
        self._rechecks: dict[Key, asyncio.TimerHandle] = {}
        self._waiting_for: dict[str, set[Key]] = {}
        """owner key of a PipelineDeployment -> the ones refused because it holds their deployment name"""
        self.reconciles = 0
        self.discovery = Discovery(cluster)

    def apis_changed(self) -> None:
        """A CRD of an optional API group was added, changed or removed: read discovery again and reconcile
        every known deployment with it."""
        self.discovery.invalidate()
        self.request_all()

    # ----- scheduling --------------------------------------------------------------------------------------

    def request(self, namespace: str, name: str) -> None:
        """Reconcile soon; requests that arrive before it starts are merged into it."""
        key = (namespace, name)
        task = self._pending.get(key)
        if task is not None and not task.done():
            return
        self._pending[key] = asyncio.get_running_loop().create_task(self._delayed(key), name=f"reconcile {key}")

    def request_all(self) -> None:
        for namespace, name in sorted(self.known):
            self.request(namespace, name)

    def request_for_secret(self, namespace: str, name: str) -> None:
        """A secret in the Kafka namespace changed: reconcile the deployments that copy it."""
        if namespace != self.settings.kafka_namespace:
            return
        if name == self.settings.kafka_tls_ca_secretname:
            self.request_all()
            return
        for key in sorted(self.secret_users.get(name, set())):
            self.request(*key)

    async def _delayed(self, key: Key) -> None:
        await asyncio.sleep(self.debounce)
        self._pending.pop(key, None)
        try:
            await self.reconcile(*key)
        except Exception:
            log.exception("reconcile of %s/%s failed; it will be retried on the next change or resync", *key)

    async def idle(self) -> None:
        """Wait until no reconcile is pending or running (tests, benchmark)."""
        while True:
            tasks = [t for t in self._pending.values() if not t.done()]
            busy = [lock for lock in self._locks.values() if lock.locked()]
            if not tasks and not busy:
                return
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0.01)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self.known.discard(key)
        self._last_problem.pop(key, None)
        self._logs.pop(key, None)
        recheck = self._rechecks.pop(key, None)
        if recheck is not None:
            recheck.cancel()
        for users in self.secret_users.values():
            users.discard(key)

    # ----- reconcile ---------------------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> Result:
        key = (namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self.reconciles += 1
            raw = await self.cluster.get(kinds.PIPELINE_DEPLOYMENT, name, namespace)
            if raw is None:
                self.forget(namespace, name)
                return Result()
            if (raw.get("metadata") or {}).get("deletionTimestamp"):
                return Result()
            self.known.add(key)
            with RECONCILE_SECONDS.time():
                result = await self._reconcile(raw)
            RECONCILES.labels("invalid" if result.problems else "ok").inc()
            return result

    async def _reconcile(self, raw: dict[str, Any]) -> Result:
        meta = raw["metadata"]
        key = (meta["namespace"], meta["name"])
        result = Result()
        problems: list[str] = []
        pipeline: PipelineDeployment | None = None
        try:
            pipeline = PipelineDeployment.model_validate(
                {k: raw[k] for k in ("apiVersion", "kind", "metadata", "spec")}
            )
        except ValidationError as exc:
            problems += [str(p) for p in from_validation_error(exc, known_models=[PipelineDeployment])]
        ident = identity_of(pipeline, meta["namespace"]) if pipeline else None
        rendered = None
        if pipeline is not None and ident is not None:
            try:
                catalog = await self._catalog(pipeline)
                errors = [p for p in validate_spec(pipeline.spec, catalog) if p.severity == "error"]
                problems += [p.located() for p in errors]
                strimzi = (await self.discovery.served()).strimzi_version if not errors else None
                if not errors and strimzi is None:
                    problems.append(STRIMZI_MISSING)
                    result.problem_reason = "StrimziMissing"
                elif strimzi is not None:
                    topology = build_topology(pipeline.spec, catalog)
                    facts = await self._facts(ident, strimzi)
                    self._index_secrets(key, ident)
                    rendered = render(pipeline, topology, self.settings, facts, meta["namespace"])
                    result.outcome = await converge(
                        self.cluster,
                        rendered.objects,
                        selector=owned_selector(ident),
                        owner_key=ident.owner_key,
                        namespaces=self._namespaces(ident, strimzi),
                        keep_topics=not self._delete_topics(raw),
                        holder_of=lambda owners: self._holder(raw, owners),
                    )
                    await self._ensure_bucket(ident, facts, rendered.notes)
            except NameTaken as exc:
                result.outcome = exc.outcome
                rendered = None
                problems.append(
                    f"spec.deploymentOwner/spec.deploymentName {ident.deployment_owner}/{ident.deployment_name} is "
                    f"already deployed by PipelineDeployment {exc.holder}: two deployments of one name would share "
                    "topics, consumer groups and objects; choose another deploymentName (nothing of this one runs)"
                )
                result.problem_reason = "NameTaken"
                self._waiting_for.setdefault(exc.holder, set()).add(key)
            except MissingKind as exc:
                self.discovery.invalidate()  # what is served changed since it was read, or a CRD is missing
                problems.append(_problem_text(exc))
                result.problem_reason = "MissingCRD"
            except ApiError as exc:
                problems.append(_problem_text(exc))
                result.problem_reason = "APIRefused"
        result.problems = problems
        await self._report(raw, ident, rendered, result)
        return result

    async def _holder(self, raw: dict[str, Any], owners: set[str]) -> str | None:
        """Of the PipelineDeployments that own objects of this one's deployment name, the one that keeps the
        name: it still exists (not being deleted) and was created first (ties: by namespace/name)."""
        meta = raw["metadata"]
        mine = (str(meta.get("creationTimestamp") or ""), f"{meta['namespace']}/{meta['name']}")
        for owner in sorted(owners):
            namespace, _, name = owner.partition("/")
            other = await self.cluster.get(kinds.PIPELINE_DEPLOYMENT, name, namespace) if name else None
            other_meta = (other or {}).get("metadata") or {}
            if other is None or other_meta.get("deletionTimestamp"):
                continue
            if (str(other_meta.get("creationTimestamp") or ""), owner) < mine:
                return owner
        return None

    async def _catalog(self, pipeline: PipelineDeployment) -> Catalog | None:
        spec = pipeline.spec
        catalog = Catalog()
        if any(a.algo_ref for a in spec.algos):
            catalog.algos = [a for a in (await self._templates(kinds.ALGO)) if isinstance(a, Algo)]
        if any(c.data_connector_ref for c in spec.data_connectors):
            catalog.connectors = [
                c for c in (await self._templates(kinds.DATA_CONNECTOR)) if isinstance(c, DataConnector)
            ]
        return catalog

    async def _templates(self, kind: kinds.Kind) -> list[Any]:
        out = []
        for obj in await self.cluster.list(kind, None):
            data = {k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in obj}
            checked = parse_resource(Document(file=f"{kind.kind}/{obj['metadata']['name']}", index=0, data=data))
            if checked.resource is not None:
                out.append(checked.resource)
            else:
                log.warning("ignoring invalid %s %s", kind.kind, obj["metadata"]["name"])
        return out

    async def _facts(self, ident: Identity, strimzi_version: str) -> ClusterFacts:
        s = self.settings
        ca = user = None
        if s.kafka_tls:
            secret = await self.cluster.get(kinds.SECRET, s.kafka_tls_ca_secretname, s.kafka_namespace)
            ca = (secret or {}).get("data") or None
        if s.kafka_auth_type != KafkaAuthType.NONE:
            source = s.kafka_user_secret_source(ident.deployment_owner, ident.deployment_name)
            secret = await self.cluster.get(kinds.SECRET, source, s.kafka_namespace)
            user = (secret or {}).get("data") or None
        storage = None
        if s.storage:
            for candidate in s.storage_secret_candidates(ident.deployment_owner, ident.deployment_name):
                secret = await self.cluster.get(kinds.SECRET, candidate, ident.deployment_namespace)
                if secret is not None and s.storage_secret_key in (secret.get("data") or {}):
                    storage = candidate
                    break
        return ClusterFacts(
            ca_secret_data=ca, user_secret_data=user, storage_secret=storage, strimzi_version=strimzi_version
        )

    def _index_secrets(self, key: Key, ident: Identity) -> None:
        if self.settings.kafka_auth_type == KafkaAuthType.NONE:
            return
        source = self.settings.kafka_user_secret_source(ident.deployment_owner, ident.deployment_name)
        self.secret_users.setdefault(source, set()).add(key)

    def _namespaces(self, ident: Identity, strimzi_version: str | None) -> dict[kinds.Kind, str]:
        """Where each managed kind lives; the Strimzi kinds in `strimzi_version` (left out when None)."""
        return {
            kind: (
                self.settings.kafka_namespace
                if kind.kind in kinds.KAFKA_NAMESPACE_KINDS
                else ident.deployment_namespace
            )
            for kind in kinds.managed(strimzi_version)
        }

    def _delete_topics(self, raw: dict[str, Any]) -> bool:
        annotations = (raw.get("metadata") or {}).get("annotations") or {}
        flag = str(annotations.get(DELETE_TOPICS_ANNOTATION, "")).lower() in ("true", "1", "yes")
        return flag or self.settings.kafka_topic_deletion

    async def _ensure_bucket(self, ident: Identity, facts: ClusterFacts, notes: list[str]) -> None:
        s = self.settings
        if not s.storage or not facts.storage_secret:
            return
        bucket = s.bucket_name(ident.deployment_owner, ident.deployment_name)
        if bucket in self._buckets:
            return
        secret = await self.cluster.get(kinds.SECRET, facts.storage_secret, ident.deployment_namespace)
        try:
            encoded = ((secret or {}).get("data") or {})[s.storage_secret_key]
            connection = parse_connection_string(base64.b64decode(encoded).decode())
            await ensure_bucket(connection, bucket, s.storage_region)
        except Exception as exc:  # storage trouble must not stop the rest of the pipeline
            notes.append(f"storage bucket {bucket!r} could not be ensured: {exc}")
            return
        self._buckets.add(bucket)

    # ----- status, events, notifications -------------------------------------------------------------------

    async def _report(self, raw: dict[str, Any], ident: Identity | None, rendered: Any, result: Result) -> None:
        meta = raw["metadata"]
        key = (meta["namespace"], meta["name"])
        spec = raw.get("spec") or {}
        owner = ident.deployment_owner if ident else str(spec.get("deploymentOwner", ""))
        name = ident.deployment_name if ident else str(spec.get("deploymentName", ""))
        workloads: list[dict[str, Any]] = []
        pods: list[dict[str, Any]] = []
        at = now()
        if ident is not None:
            if result.outcome is not None:
                workloads = [
                    o
                    for k, o in result.outcome.live.items()
                    if k[0] in ("Deployment", "StatefulSet", "KafkaConnect", "KafkaConnector")
                ]
            else:
                workloads = await self._live_workloads(ident, (await self.discovery.served()).strimzi_version)
            pods = [p for p in await self.cluster.list(kinds.POD, ident.deployment_namespace, owned_selector(ident))]
        connectors = [w for w in workloads if w.get("kind") == "KafkaConnector"]
        workloads = [w for w in workloads if w.get("kind") != "KafkaConnector"]
        expected = (
            list(rendered.workloads)
            if rendered is not None
            else [(w["kind"], w["metadata"]["name"]) for w in workloads]
        )
        if rendered is not None:
            expected += [
                ("KafkaConnect", o["metadata"]["name"]) for o in rendered.objects if o["kind"] == "KafkaConnect"
            ]
        observed = Observed(
            owner=owner,
            name=name,
            namespace=ident.deployment_namespace if ident else meta["namespace"],
            generation=meta.get("generation"),
            expected=expected,
            workloads=workloads,
            pods=pods,
            connectors=connectors,
            algo_count=len(spec.get("algos") or []),
            problems=result.problems,
            problem_reason=result.problem_reason,
            waiting=list(rendered.notes) if rendered is not None else [],
        )
        observed.logs = await self._read_logs(key, observed.namespace, log_requests(pods, at), result)
        self._recheck(key, recheck_after(pods, at))
        old_raw = raw.get("status")
        old = parse_status(old_raw)
        new = compute(observed, old, at)
        result.status = new.status.value if new.status else None
        patch = status_patch(new, old_raw)
        if patch is not None:
            await self.cluster.patch(kinds.PIPELINE_DEPLOYMENT, meta["name"], meta["namespace"], patch, status=True)
            result.status_written = True
            self.notifier.send(notifications(old, new, observed.namespace))
            for event in component_events(old, new):
                await events.post(self.cluster, raw, event.type, event.reason, event.message)
        await self._events(raw, key, result)

    async def _read_logs(
        self, key: Key, namespace: str, wanted: list[LogRequest], result: Result
    ) -> dict[tuple[str, str], list[str]]:
        """The last lines of the failing containers' logs, read at a bounded rate (module docstring); the cache
        keeps only what is still wanted."""
        cached = self._logs.get(key, {})
        kept: dict[LogRequest, _LogEntry] = {}
        clock = time.monotonic()
        for request in wanted:
            entry = cached.get(request)
            fresh = entry is not None and (
                (request.final and entry.complete) or clock - entry.read_at < LOG_REFRESH_SECONDS
            )
            if not fresh and result.log_reads < MAX_LOG_READS:
                result.log_reads += 1
                try:
                    text = await self._instance_log(request, namespace)
                    entry = _LogEntry(tail_lines(text), clock, complete=True)
                except Exception as exc:  # a log we cannot read leaves the status without it, nothing more
                    log.info("could not read the log of %s/%s %s: %s", namespace, request.pod, request.container, exc)
                    entry = _LogEntry(entry.lines if entry else [], clock, complete=False)
            if entry is not None:
                kept[request] = entry
        if kept:
            self._logs[key] = kept
        else:
            self._logs.pop(key, None)
        return {(r.pod, r.container): entry.lines for r, entry in kept.items()}

    async def _instance_log(self, request: LogRequest, namespace: str) -> str:
        """The end of the log of the container instance `request` names.

        An instance that exited is read as the current one, but the kubelet restarts it, maybe between the
        observation and the read: the current log is then the new instance's (often nothing yet), and an exited
        instance's log is read only once, so the failure would keep that for good (and its Event would go out
        without the crash's last words). So after such a read the pod is read again, and when the container has
        been restarted meanwhile, the log read is the previous instance's: the one that exited."""

        async def read(previous: bool) -> str:
            return await self.cluster.pod_log(
                request.pod,
                namespace,
                request.container,
                previous=previous,
                tail_lines=LOG_TAIL_LINES,
                limit_bytes=LOG_READ_BYTES,
            )

        text = await read(request.previous)
        exited_current = request.final and not request.previous
        if exited_current and restarted_since(await self.cluster.get(kinds.POD, request.pod, namespace), request):
            return await read(True)
        return text

    def _recheck(self, key: Key, delay: float | None) -> None:
        """Reconcile `key` again in `delay` seconds (plus a second, so the allowance has surely passed), unless
        one is already due sooner."""
        if delay is None:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay + 1.0
        current = self._rechecks.get(key)
        if current is not None and not current.cancelled() and current.when() <= due and current.when() > loop.time():
            return
        if current is not None:
            current.cancel()
        self._rechecks[key] = loop.call_at(due, self._recheck_due, key)

    def _recheck_due(self, key: Key) -> None:
        self._rechecks.pop(key, None)
        if key in self.known:
            self.request(*key)

    async def _live_workloads(self, ident: Identity, strimzi_version: str | None) -> list[dict[str, Any]]:
        connect = (
            [kinds.strimzi(kinds.KAFKA_CONNECT, strimzi_version), kinds.strimzi(kinds.KAFKA_CONNECTOR, strimzi_version)]
            if strimzi_version
            else []
        )
        out: list[dict[str, Any]] = []
        for kind in (kinds.DEPLOYMENT, kinds.STATEFUL_SET, *connect):
            try:
                out += [
                    o
                    for o in await self.cluster.list(kind, ident.deployment_namespace, owned_selector(ident))
                    if ((o["metadata"].get("annotations") or {}).get("algo.run/owner")) == ident.owner_key
                ]
            except MissingKind:
                continue
        return out

    async def _events(self, raw: dict[str, Any], key: Key, result: Result) -> None:
        problem = "; ".join(result.problems)
        if problem and self._last_problem.get(key) != problem:
            await events.post(self.cluster, raw, "Warning", result.problem_reason, problem)
        if not problem and self._last_problem.get(key):
            await events.post(self.cluster, raw, "Normal", "Recovered", "the pipeline spec can be realised again")
        self._last_problem[key] = problem
        outcome = result.outcome
        if outcome is None:
            return
        if outcome.applied:
            await events.post(self.cluster, raw, "Normal", "Applied", _summary("applied", outcome.applied))
        if outcome.deleted:
            await events.post(self.cluster, raw, "Normal", "Pruned", _summary("deleted", outcome.deleted))

    # ----- deletion ----------------------------------------------------------------------------------------

    async def finalize(self, raw: dict[str, Any]) -> tuple[int, int]:
        """Delete what the deployment owns (cross-namespace objects have no owner reference and the garbage
        collector cannot be relied on to run), keep its KafkaTopics unless the user opted in, mark it
        Terminated and notify. Returns (deleted, kept) counts."""
        meta = raw["metadata"]
        key = (meta["namespace"], meta["name"])
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            try:
                pipeline = PipelineDeployment.model_validate(
                    {k: raw[k] for k in ("apiVersion", "kind", "metadata", "spec")}
                )
            except ValidationError:
                self.forget(*key)
                return 0, 0
            ident = identity_of(pipeline, meta["namespace"])
            strimzi = (await self.discovery.served()).strimzi_version
            deleted, kept = await delete_owned(
                self.cluster,
                owned_selector(ident),
                ident.owner_key,
                self._namespaces(ident, strimzi),
                keep_topics=not self._delete_topics(raw),
            )
            status = dict(raw.get("status") or {})
            if status.get("status") != "Terminated":
                try:
                    await self.cluster.patch(
                        kinds.PIPELINE_DEPLOYMENT,
                        meta["name"],
                        meta["namespace"],
                        {"status": {"status": "Terminated"}},
                        status=True,
                    )
                except ApiError as exc:
                    log.info("could not mark %s/%s Terminated: %s", *key, exc.status.message)
            self.notifier.send(
                [deleted_notification(ident.deployment_owner, ident.deployment_name, ident.deployment_namespace)]
            )
            message = f"deleted {len(deleted)} objects"
            if kept:
                message += f"; kept {len(kept)} KafkaTopics (annotate {DELETE_TOPICS_ANNOTATION}=true to delete them)"
            await events.post(self.cluster, raw, "Normal", "CleanedUp", message)
            self.forget(*key)
            for waiting in sorted(self._waiting_for.pop(ident.owner_key, set())):
                self.request(*waiting)  # the name is free: a refused deployment takes it (and the kept topics)
            return len(deleted), len(kept)


def _summary(verb: str, keys: list[tuple[str, str, str]]) -> str:
    names = ", ".join(f"{k}/{n}" for k, _, n in keys[:10])
    more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
    return f"{verb} {len(keys)} objects: {names}{more}"
