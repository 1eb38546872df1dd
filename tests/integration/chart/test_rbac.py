"""The chart's RBAC is exactly what the operator needs: the real operator, authenticated as the chart's
ServiceAccount (a token the API server issued for it), reconciles every example pipeline with no Forbidden
error, in both scopes; SubjectAccessReviews show what it may not do."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart_render import (
    Discovery,
    container_env,
    find,
    render,
    server_apply,
)
from tests.support.examples import example
from tests.support.helm import Helm
from tests.support.kube import KubeAPI
from tests.support.paths import EXAMPLES
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

EXAMPLE_NAMES = sorted(p.parent.name for p in EXAMPLES.glob("*/pipeline.yaml"))


@dataclass
class Install:
    """The chart applied to the API server for one scope."""

    namespace: str
    kafka_namespace: str
    service_account: str
    docs: list[dict[str, Any]]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _install(kube: KubeAPI, helm: Helm, tmp_path: Path, scope: str) -> Install:
    namespace = kube.create_namespace(f"rbac-{scope[:2]}")
    kafka_namespace = kube.create_namespace("kafka")
    values = {
        # Cluster scope keeps its ClusterRole but watches only this test's namespace, so it never
        # reconciles pipelines of other tests sharing the API server.
        "scope": {"type": scope, "watchNamespace": namespace},
        "kafka": {"namespace": kafka_namespace},
        "metrics": {"createDashboards": False},
    }
    docs = render(helm, tmp_path, values, release=f"op-{uuid.uuid4().hex[:6]}", namespace=namespace)
    discovery = Discovery(kube)
    for doc in docs:
        status, body = server_apply(kube, discovery, doc, namespace, dry_run=False)
        assert status in (200, 201), f"{doc['kind']}/{doc['metadata']['name']}: {body}"
    (sa,) = find(docs, "ServiceAccount")
    return Install(namespace, kafka_namespace, sa["metadata"]["name"], docs)


def _token_kubeconfig(kube: KubeAPI, install: Install, path: Path) -> Path:
    """A kubeconfig holding a token the API server issued for the chart's ServiceAccount."""
    status, body = kube.request(
        "POST",
        f"/api/v1/namespaces/{install.namespace}/serviceaccounts/{install.service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )
    assert status == 201, body
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": kube.server,
                    "certificate-authority-data": base64.b64encode(kube.ca_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "sa", "user": {"token": body["status"]["token"]}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "sa", "namespace": install.namespace}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        self.messages.append(f"{record.name}: {text}")


@pytest.fixture
def warnings_logged() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _sar(
    kube: KubeAPI,
    install: Install,
    verb: str,
    resource: str,
    namespace: str = "",
    group: str = "",
    subresource: str = "",
) -> bool:
    attributes = {
        "verb": verb,
        "resource": resource,
        "group": group,
        "namespace": namespace,
        "subresource": subresource,
    }
    status, body = kube.request(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": install.user,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{install.namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": {k: v for k, v in attributes.items() if v},
            },
        },
    )
    assert status == 201, body
    return bool(body["status"]["allowed"])


async def _reconcile_examples(kube: KubeAPI, install: Install, kubeconfig: Path) -> list[dict[str, Any]]:
    """Run the operator as the ServiceAccount, apply every example as an admin, wait for their statuses."""
    from algorun.operator.service import Operator
    from algorun.operator.settings import OperatorOptions

    env = {k.lower(): v for k, v in container_env(install.docs).items() if isinstance(v, str)}
    settings = OperatorOptions.model_validate({**env, "resync_seconds": 3600})
    discovery = Discovery(kube)
    ca = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": settings.kafka_tls_ca_secretname, "namespace": install.kafka_namespace},
        "data": {settings.kafka_tls_ca_key: base64.b64encode(b"CA").decode()},
    }
    assert server_apply(kube, discovery, ca, install.kafka_namespace, dry_run=False)[0] in (200, 201)

    operator = Operator(settings, kubeconfig)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(operator.run(standalone=True, stop_flag=stop, ready_flag=ready))
    try:
        await eventually(lambda: _started(ready, task), "the operator to start", limit=30)
        names = []
        for name in EXAMPLE_NAMES:
            pd, templates = example(name, install.namespace)
            for doc in [*templates, pd]:
                status, body = server_apply(kube, discovery, doc, install.namespace, dry_run=False)
                assert status in (200, 201), body
            names.append(pd["metadata"]["name"])

        async def all_reported() -> list[dict[str, Any]] | None:
            await operator.reconciler.idle()
            found = []
            for name in names:
                status, pd = kube.request(
                    "GET", f"/apis/algo.run/v1beta1/namespaces/{install.namespace}/pipelinedeployments/{name}"
                )
                if status != 200 or not (pd.get("status") or {}).get("status"):
                    return None
                found.append(pd)
            return found

        return await eventually(all_reported, "a status on every example pipeline", limit=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _started(ready: asyncio.Event, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return ready.is_set()


def _forbidden(texts: list[str]) -> list[str]:
    return [t for t in texts if "forbidden" in t.lower() or " 403" in t]


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
async def test_operator_reconciles_the_examples_as_the_chart_service_account(
    kube: KubeAPI, helm: Helm, tmp_path: Path, scope: str, warnings_logged: _Records
) -> None:
    install = _install(kube, helm, tmp_path, scope)
    kubeconfig = _token_kubeconfig(kube, install, tmp_path / "sa.kubeconfig")

    pipelines = await _reconcile_examples(kube, install, kubeconfig)

    problems = [
        f"{pd['metadata']['name']}: {c.get('message')}"
        for pd in pipelines
        for c in (pd.get("status") or {}).get("conditions") or []
    ]
    assert not _forbidden(problems), _forbidden(problems)
    assert not _forbidden(warnings_logged.messages), _forbidden(warnings_logged.messages)
    status, deployments = kube.request("GET", f"/apis/apps/v1/namespaces/{install.namespace}/deployments")
    assert status == 200 and deployments["items"], "the operator created no Deployment"
    status, topics = kube.request("GET", f"/apis/kafka.strimzi.io/v1/namespaces/{install.kafka_namespace}/kafkatopics")
    assert status == 200 and topics["items"], "the operator created no KafkaTopic"


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_service_account_can_do_what_the_operator_does(kube: KubeAPI, helm: Helm, tmp_path: Path, scope: str) -> None:
    install = _install(kube, helm, tmp_path, scope)
    ns, kafka = install.namespace, install.kafka_namespace

    assert _sar(kube, install, "watch", "pipelinedeployments", ns, "algo.run")
    assert _sar(kube, install, "patch", "pipelinedeployments", ns, "algo.run", "status")
    assert _sar(kube, install, "list", "algos", group="algo.run")
    assert _sar(kube, install, "create", "deployments", ns, "apps")
    assert _sar(kube, install, "patch", "horizontalpodautoscalers", ns, "autoscaling")
    assert _sar(kube, install, "create", "events", ns)
    assert _sar(kube, install, "get", "pods", ns, subresource="log"), "failing containers' logs go in the status"
    assert _sar(kube, install, "get", "pods", ns), "a pod is read again before an exited container's log"
    assert _sar(kube, install, "create", "mappings", ns, "getambassador.io")
    assert _sar(kube, install, "patch", "certificates", ns, "cert-manager.io")
    assert _sar(kube, install, "delete", "certificates", ns, "cert-manager.io")
    assert _sar(kube, install, "delete", "kafkatopics", kafka, "kafka.strimzi.io")
    assert _sar(kube, install, "get", "secrets", kafka)


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_service_account_cannot_do_what_the_operator_does_not_need(
    kube: KubeAPI, helm: Helm, tmp_path: Path, scope: str
) -> None:
    install = _install(kube, helm, tmp_path, scope)
    ns, kafka = install.namespace, install.kafka_namespace

    denied = {
        "delete nodes": _sar(kube, install, "delete", "nodes"),
        "create clusterrolebindings": _sar(
            kube, install, "create", "clusterrolebindings", group="rbac.authorization.k8s.io"
        ),
        "impersonate users": _sar(kube, install, "impersonate", "users"),
        "create pods": _sar(kube, install, "create", "pods", ns),
        "exec into pods": _sar(kube, install, "create", "pods", ns, subresource="exec"),
        "update deployments": _sar(kube, install, "update", "deployments", ns, "apps"),
        "deletecollection configmaps": _sar(kube, install, "deletecollection", "configmaps", ns),
        "delete persistentvolumeclaims": _sar(kube, install, "delete", "persistentvolumeclaims", ns),
        "create kafkatopics outside the Kafka namespace": _sar(
            kube, install, "create", "kafkatopics", ns, "kafka.strimzi.io"
        ),
        "delete the CRDs": _sar(kube, install, "delete", "customresourcedefinitions", group="apiextensions.k8s.io"),
        "write Algo templates": _sar(kube, install, "patch", "algos", group="algo.run"),
        "create validating webhooks": _sar(
            kube, install, "create", "validatingwebhookconfigurations", group="admissionregistration.k8s.io"
        ),
    }
    if scope == "namespace":
        denied["write secrets in the Kafka namespace"] = _sar(kube, install, "patch", "secrets", kafka)
        denied["read secrets in another namespace"] = _sar(kube, install, "get", "secrets", "default")
        denied["list secrets cluster-wide"] = _sar(kube, install, "list", "secrets")
        denied["create deployments in another namespace"] = _sar(
            kube, install, "create", "deployments", "default", "apps"
        )

    assert not [what for what, allowed in denied.items() if allowed]
