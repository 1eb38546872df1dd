"""Converge the cluster to a desired object list: server-side apply what differs, prune what is no longer wanted.

One field manager (`algorun-operator`) owns every field the operator sets, and applies are forced, so a field
someone changed by hand is taken back. Live objects are read with one list per kind and namespace (by the
deployment's labels), which serves both the diff and the prune. Every write goes through `Cluster`, which
counts them: a resync of an unchanged pipeline must count zero.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.resources import core_v1
from lightkube.types import PatchType

from algorun.operator import kinds
from algorun.operator.diff import needs_apply, with_digest
from algorun.operator.kinds import Kind
from algorun.operator.metrics import WRITES
from algorun.operator.render.kafka import keep_partitions
from algorun.operator.render.labels import OWNER_ANNOTATION, selector_string

log = logging.getLogger(__name__)

ObjKey = tuple[str, str, str]
ISSUED_FOR = "cert-manager.io/certificate-name"
"""The annotation cert-manager puts on the Secret it writes for a Certificate."""
"""(kind, namespace, name)."""


def key_of(obj: dict[str, Any]) -> ObjKey:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


class MissingKind(Exception):
    """A kind the pipeline needs is not served by the API server (its CRD is not installed)."""

    def __init__(self, kind: Kind) -> None:
        super().__init__(f"the API server does not serve {kind.kind} ({kind.api_version}); install the CRD {kind.crd}")
        self.kind = kind


def _list_namespace(kind: Kind, namespace: str | None) -> str | None:
    if not kind.namespaced:
        return None
    return namespace if namespace is not None else "*"


class NameTaken(Exception):
    """Another PipelineDeployment that still exists owns objects of this deploymentOwner/deploymentName."""

    def __init__(self, holder: str, outcome: ApplyResult) -> None:
        super().__init__(holder)
        self.holder = holder
        self.outcome = outcome


class Cluster:
    """The operator's I/O with the API server, with every write counted (by verb and kind)."""

    def __init__(self, client: AsyncClient, field_manager: str) -> None:
        self.client = client
        self.field_manager = field_manager
        self.writes: Counter[str] = Counter()

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())

    def _count(self, verb: str, kind: str) -> None:
        self.writes[f"{verb} {kind}"] += 1
        WRITES.labels(verb, kind).inc()

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            obj = await self.client.get(kinds.resource(kind), name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        return dict(obj.to_dict())

    async def list(
        self,
        kind: Kind,
        namespace: str | None,
        labels: dict[str, str] | None = None,
        fields: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of `kind` (all namespaces when `namespace` is None), selected by `labels` and `fields`;
        MissingKind when it is not served."""
        try:
            result = [
                dict(o.to_dict())
                async for o in self.client.list(
                    kinds.resource(kind),
                    namespace=_list_namespace(kind, namespace),
                    labels=dict(labels or {}),
                    fields=dict(fields or {}),
                )
            ]
        except ApiError as exc:
            if exc.status.code == 404:
                raise MissingKind(kind) from exc
            raise
        for obj in result:
            obj.setdefault("apiVersion", kind.api_version)
            obj.setdefault("kind", kind.kind)
        return result

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = kinds.of(obj)
        self._count("apply", kind.kind)
        try:
            client: Any = self.client  # lightkube's overloads do not cover generic resources
            result = await client.apply(
                kinds.resource(kind)(obj),
                namespace=obj["metadata"].get("namespace") if kind.namespaced else None,
                field_manager=self.field_manager,
                force=True,
            )
        except ApiError as exc:
            if exc.status.code == 404 and "the server could not find the requested resource" in (
                exc.status.message or ""
            ):
                raise MissingKind(kind) from exc
            raise
        return dict(result.to_dict())

    async def delete(self, kind: Kind, name: str, namespace: str | None) -> bool:
        """Delete; False when it was already gone."""
        self._count("delete", kind.kind)
        try:
            await self.client.delete(kinds.resource(kind), name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return False
            raise
        return True

    async def patch(
        self,
        kind: Kind,
        name: str,
        namespace: str | None,
        body: dict[str, Any],
        *,
        status: bool = False,
        patch_type: PatchType = PatchType.MERGE,
    ) -> dict[str, Any]:
        self._count("patch-status" if status else "patch", kind.kind)
        res = kinds.resource(kind)
        result = await self.client.patch(
            res.Status if status else res, name, body, namespace=namespace, patch_type=patch_type
        )
        return dict(result.to_dict())

    async def create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        self._count("create", kind.kind)
        client: Any = self.client
        result = await client.create(kinds.resource(kind)(obj), namespace=obj["metadata"].get("namespace"))
        return dict(result.to_dict())

    async def pod_log(
        self, name: str, namespace: str, container: str, *, previous: bool, tail_lines: int, limit_bytes: int
    ) -> str:
        """The end of a container's log (`pods/log`): its last `tail_lines` lines, at most `limit_bytes` read,
        of the current instance or the `previous` one (a restarted container's). lightkube's own `log()` has no
        `previous` nor `limitBytes`, so the request is built with its generic client."""
        inner: Any = self.client._client
        request = inner.prepare_request(
            "get",
            core_v1.PodLog,
            name=name,
            namespace=namespace,
            params={
                "container": container,
                "tailLines": tail_lines,
                "limitBytes": limit_bytes,
                "previous": "true" if previous else None,
            },
        )
        response = await inner.send(inner.build_adapter_request(request))
        inner.raise_for_status(response)
        return str(response.text)


@dataclass
class ApplyResult:
    applied: list[ObjKey] = field(default_factory=list)
    deleted: list[ObjKey] = field(default_factory=list)
    kept: list[ObjKey] = field(default_factory=list)
    """Objects no longer desired but kept on purpose (KafkaTopics holding data)."""
    live: dict[ObjKey, dict[str, Any]] = field(default_factory=dict)
    """Every owned object after the apply (as read, or as returned by the apply)."""

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.deleted)


def owned_by(obj: dict[str, Any], owner_key: str) -> bool:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION) == owner_key


async def read_owned(
    cluster: Cluster,
    selector: dict[str, str],
    owner_key: str,
    places: Iterable[tuple[Kind, str]],
    needed: set[str],
    foreign: set[str] | None = None,
) -> dict[ObjKey, dict[str, Any]]:
    """Owned objects of every (kind, namespace). A kind that is not served is fine unless it is `needed`.

    Objects with the deployment's labels but another owner add that owner's key to `foreign`."""
    live: dict[ObjKey, dict[str, Any]] = {}
    for kind, namespace in places:
        try:
            objects = await cluster.list(kind, namespace, labels=selector)
        except MissingKind:
            if kind.kind in needed:
                raise
            continue
        for obj in objects:
            if owned_by(obj, owner_key):
                live[key_of(obj)] = obj
            elif foreign is not None:
                other = ((obj.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
                if other:
                    foreign.add(str(other))
    return live


async def converge(
    cluster: Cluster,
    desired: list[dict[str, Any]],
    *,
    selector: dict[str, str],
    owner_key: str,
    namespaces: dict[Kind, str],
    keep_topics: bool = True,
    holder_of: Callable[[set[str]], Awaitable[str | None]] | None = None,
) -> ApplyResult:
    """Apply what differs, then delete owned objects that are not desired.

    `namespaces` says where each managed kind lives (the deployment namespace, or the Kafka namespace for
    topics and users). KafkaTopics that are no longer desired are kept unless `keep_topics` is False: deleting
    a topic deletes its data.

    Two PipelineDeployments with one deploymentOwner/deploymentName would share topics, consumer groups and
    object names, and a forced apply of each would take the other's objects in turn. `holder_of` is given the
    owners of objects that carry this deployment's labels but are not ours; when it names one that keeps the
    name (it exists and came first), nothing is applied, what we own is removed (topics kept) and NameTaken is
    raised. Objects of an owner that is gone (a deleted pipeline's kept topics) are taken over.
    """
    needed = {o["kind"] for o in desired}
    foreign: set[str] = set()
    live = await read_owned(cluster, selector, owner_key, namespaces.items(), needed, foreign)
    outcome = ApplyResult(live=dict(live))
    holder = await holder_of(foreign) if foreign and holder_of is not None else None
    if holder is not None:
        await _prune(cluster, outcome, live, set(), keep_topics)
        raise NameTaken(holder, outcome)
    wanted: set[ObjKey] = set()
    for obj in desired:
        key = key_of(obj)
        wanted.add(key)
        current = live.get(key)
        if obj["kind"] == "KafkaTopic":
            obj = keep_partitions(obj, current)
        if obj["kind"] == "StatefulSet" and current is not None:
            obj = _keep_claim_templates(obj, current)
        final = with_digest(obj)
        if needs_apply(final, current):
            outcome.live[key] = await cluster.apply(final)
            outcome.applied.append(key)
    await _prune(cluster, outcome, live, wanted, keep_topics)
    return outcome


async def _prune(
    cluster: Cluster, outcome: ApplyResult, live: dict[ObjKey, dict[str, Any]], wanted: set[ObjKey], keep_topics: bool
) -> None:
    """Delete the live objects not `wanted` (KafkaTopics only when `keep_topics` is False), into `outcome`."""
    for key, obj in sorted(live.items()):
        if key in wanted:
            continue
        if key[0] == "KafkaTopic" and keep_topics:
            outcome.kept.append(key)
            continue
        await _delete(cluster, obj)
        outcome.live.pop(key, None)
        outcome.deleted.append(key)


async def _delete(cluster: Cluster, obj: dict[str, Any]) -> bool:
    """Delete an owned object; a cert-manager Certificate takes the Secret it issued with it (cert-manager leaves
    it behind unless it runs with --enable-certificate-owner-ref, and it holds a private key). False when the
    object was already gone."""
    kind, namespace, name = key_of(obj)
    gone = await cluster.delete(kinds.of(obj), name, namespace or None)
    if kind == "Certificate":
        secret_name = str((obj.get("spec") or {}).get("secretName") or "")
        secret = await cluster.get(kinds.SECRET, secret_name, namespace) if secret_name else None
        annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
        if annotations.get(ISSUED_FOR) == name:  # issued for it: not a user's Secret of the same name
            await cluster.delete(kinds.SECRET, secret_name, namespace)
    return gone


def _keep_claim_templates(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """A StatefulSet's volumeClaimTemplates cannot change; keep the live ones (a new size needs a new set)."""
    templates = (live.get("spec") or {}).get("volumeClaimTemplates")
    if not templates:
        return desired
    live_names = [t["metadata"]["name"] for t in templates]
    wanted = desired["spec"].get("volumeClaimTemplates") or []
    if [t["metadata"]["name"] for t in wanted] != live_names:
        return desired
    kept = [{"metadata": {"name": t["metadata"]["name"]}, "spec": _claim_spec(t)} for t in templates]
    return {**desired, "spec": {**desired["spec"], "volumeClaimTemplates": kept}}


def _claim_spec(template: dict[str, Any]) -> dict[str, Any]:
    spec = template.get("spec") or {}
    return {k: spec[k] for k in ("accessModes", "resources") if k in spec}


async def delete_owned(
    cluster: Cluster,
    selector: dict[str, str],
    owner_key: str,
    namespaces: dict[Kind, str],
    *,
    keep_topics: bool,
) -> tuple[list[ObjKey], list[ObjKey]]:
    """Delete every owned object (the finalizer's cleanup); returns (deleted, kept topics)."""
    live = await read_owned(cluster, selector, owner_key, namespaces.items(), set())
    deleted, kept = [], []
    for key, obj in sorted(live.items()):
        if key[0] == "KafkaTopic" and keep_topics:
            kept.append(key)
            continue
        if await _delete(cluster, obj):
            deleted.append(key)
    return deleted, kept


__all__ = [
    "ApplyResult",
    "Cluster",
    "MissingKind",
    "converge",
    "delete_owned",
    "key_of",
    "read_owned",
    "selector_string",
]
