"""Run the operator: one lightkube client for the operator's own I/O, kopf for watches, peering and finalizers.

Credentials: a kubeconfig path when given (`--kubeconfig` or `KUBECONFIG`), else the in-cluster service account.
Both kopf and lightkube use the same source, and in a pod the same address: KUBERNETES_SERVICE_HOST and _PORT,
as client-go and lightkube do, so the operator works without cluster DNS (kopf's own service-account login
names `kubernetes.default.svc`, which a cluster without DNS cannot resolve).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import yaml
from lightkube import AsyncClient, KubeConfig
from prometheus_client import start_http_server

from algorun.operator.apply import Cluster
from algorun.operator.handlers import build_registry, configure
from algorun.operator.notify import Notifier
from algorun.operator.reconcile import Reconciler
from algorun.operator.settings import OperatorOptions

log = logging.getLogger(__name__)


def _kubeconfig_login(path: Path) -> kopf.ConnectionInfo:
    """kopf credentials from one kubeconfig file (its current context)."""
    config = yaml.safe_load(path.read_text()) or {}
    context_name = config.get("current-context")
    context = next(c["context"] for c in config.get("contexts", []) if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config.get("clusters", []) if c["name"] == context["cluster"])
    user = next(u["user"] for u in config.get("users", []) if u["name"] == context["user"])

    def data(key: str) -> bytes | None:
        value = cluster.get(key) if key.startswith("certificate-authority") else user.get(key)
        return base64.b64decode(value) if value else None

    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=cluster.get("certificate-authority"),
        ca_data=data("certificate-authority-data"),
        insecure=cluster.get("insecure-skip-tls-verify"),
        certificate_path=user.get("client-certificate"),
        certificate_data=data("client-certificate-data"),
        private_key_path=user.get("client-key"),
        private_key_data=data("client-key-data"),
        token=user.get("token"),
        default_namespace=context.get("namespace"),
    )


def in_cluster_server(environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """The API server's address as the kubelet gives it to every pod, or None outside a pod."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _service_account_login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's service-account credentials, sent to the address in the pod's environment."""
    info = kopf.login_with_service_account(**kwargs)
    server = in_cluster_server()
    if info is None or server is None:
        return info
    return dataclasses.replace(info, server=server)


def pod_priority(pod_name: str) -> int:
    """A peering priority derived from the pod name: kopf instances of equal priority pause each other, so
    replicas need distinct ones (collisions among a handful of replicas are unlikely, 1 in ~10^5 per pair)."""
    if not pod_name:
        return 0
    return 1 + int.from_bytes(hashlib.sha256(pod_name.encode()).digest()[:4], "big") % 100_000


@dataclass
class Operator:
    settings: OperatorOptions
    kubeconfig: Path | None = None

    def __post_init__(self) -> None:
        if self.kubeconfig is None and os.environ.get("KUBECONFIG"):
            self.kubeconfig = Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])
        config = KubeConfig.from_file(self.kubeconfig) if self.kubeconfig else KubeConfig.from_service_account()
        self.client = AsyncClient(config=config, field_manager=self.settings.field_manager)
        self.cluster = Cluster(self.client, self.settings.field_manager)
        self.reconciler = Reconciler(self.cluster, self.settings, Notifier.from_settings(self.settings))
        self.registry = build_registry(self.reconciler)
        kubeconfig = self.kubeconfig

        @kopf.on.login(registry=self.registry)
        def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            if kubeconfig is not None:
                return _kubeconfig_login(kubeconfig)
            return _service_account_login(**kwargs)

        @kopf.on.startup(registry=self.registry)
        def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
            configure(settings)

    async def run(
        self,
        *,
        standalone: bool = False,
        peering_name: str | None = "algorun",
        priority: int | None = None,
        stop_flag: asyncio.Event | None = None,
        ready_flag: asyncio.Event | None = None,
    ) -> None:
        namespaces = self.settings.namespaces
        metrics = start_http_server(self.settings.metrics_port) if self.settings.metrics_enabled else None
        try:
            await kopf.operator(
                registry=self.registry,
                standalone=standalone,
                peering_name=None if standalone else peering_name,
                priority=priority if priority is not None else pod_priority(os.environ.get("POD_NAME", "")),
                liveness_endpoint=self.settings.liveness_endpoint or None,
                clusterwide=not namespaces,
                namespaces=namespaces,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        finally:
            if metrics is not None:
                server, thread = metrics
                server.shutdown()
                server.server_close()
                thread.join(timeout=5)
            await self.reconciler.idle()
            await self.reconciler.notifier.close()
            await self.client.close()
