"""The operator running inside the test process against the test bed's kube-apiserver, plus a local
notification receiver and helpers to wait on conditions (never on sleeps) and to count API writes."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from algorun.operator import kinds
from algorun.operator.service import Operator
from algorun.operator.settings import OperatorOptions
from tests.support.kube import KubeAPI
from tests.support.waiting import eventually

WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")


@dataclass
class Receiver:
    """An HTTP server that records every notification POSTed to it."""

    url: str = ""
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, path_suffix: str) -> list[dict[str, Any]]:
        return [body for path, body in self.received if path.endswith(path_suffix)]


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        rec.received.append((request.path, await request.json()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/notify"
    try:
        yield rec
    finally:
        await runner.cleanup()


@dataclass
class Harness:
    kube: KubeAPI
    operator: Operator
    namespace: str
    kafka_namespace: str
    notifications: Receiver

    @property
    def cluster(self) -> Any:
        return self.operator.cluster

    async def get(self, kind: kinds.Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return await self.cluster.get(kind, name, namespace if namespace is not None else self.namespace)

    async def owned(self, kind: kinds.Kind, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        objects = await self.cluster.list(
            kind, namespace or self.namespace, {"app.kubernetes.io/managed-by": "pipeline-operator"}
        )
        return {o["metadata"]["name"]: o for o in objects}

    async def pd(self, name: str) -> dict[str, Any] | None:
        return await self.get(kinds.PIPELINE_DEPLOYMENT, name)

    async def apply_pd(self, doc: dict[str, Any]) -> None:
        """Create or update a PipelineDeployment as a user would (server-side apply, manager `tests`)."""
        await self.cluster.client.apply(
            kinds.resource(kinds.PIPELINE_DEPLOYMENT)(doc), field_manager="tests", force=True, namespace=self.namespace
        )

    async def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        pd = await self.pd(name)
        for cond in ((pd or {}).get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return None

    async def status_of(self, name: str) -> str | None:
        pd = await self.pd(name)
        return ((pd or {}).get("status") or {}).get("status")

    async def settle(self) -> None:
        """Wait until the operator has nothing pending (every watch event seen so far is reconciled)."""
        await self.operator.reconciler.idle()

    async def mark_ready(self, kind: kinds.Kind, name: str) -> None:
        """Play the part of the missing controllers: report every replica of a workload ready."""
        obj = await self.get(kind, name)
        assert obj is not None, f"{kind.kind} {name} does not exist"
        replicas = obj["spec"].get("replicas", 1)
        status = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
        }
        if kind == kinds.STATEFUL_SET:
            status["currentReplicas"] = replicas
        await self.cluster.client.patch(
            kinds.resource(kind).Status, name, {"status": status}, namespace=self.namespace, patch_type=_merge()
        )

    def api_writes(self) -> int:
        """Write requests the API server has served (its own metrics), leases excluded."""
        status, body = self.kube.get("/metrics")
        assert status == 200
        total = 0
        for line in body.decode().splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if labels.get("verb") in WRITE_VERBS and labels.get("resource") != "leases":
                total += int(float(line.rsplit(" ", 1)[1]))
        return total


def _merge() -> Any:
    from lightkube.types import PatchType

    return PatchType.MERGE


@contextlib.asynccontextmanager
async def running_operator(kube: KubeAPI, **overrides: Any) -> AsyncIterator[Harness]:
    namespace = overrides.pop("namespace", None) or kube.create_namespace("op")
    kafka_namespace = overrides.pop("kafka_namespace", None) or kube.create_namespace("kafka")
    async with receiver() as rec:
        settings = OperatorOptions.model_validate(
            {
                "watch_namespace": f"{namespace},{kafka_namespace}",
                "kafka_namespace": kafka_namespace,
                "notif_url": rec.url,
                "resync_seconds": 3600,
                # several operators run in one test process: no fixed ports unless a test asks for them
                "metrics_enabled": False,
                "liveness_endpoint": "",
                **overrides,
            }
        )
        operator = Operator(settings, kube.kubeconfig)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(operator.run(standalone=True, stop_flag=stop, ready_flag=ready))
        await eventually(lambda: _flag(ready, task), "the operator to start", limit=30)
        try:
            yield Harness(kube, operator, namespace, kafka_namespace, rec)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def _flag(flag: asyncio.Event, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return flag.is_set()
