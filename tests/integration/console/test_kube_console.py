"""`algorun console --kubeconfig` against the test bed's kube-apiserver, with a user that is not the admin (a
ServiceAccount token, RBAC on), and a real runner process outside the cluster whose /metrics page the console
reads through the API server's service proxy (a Service without selector, its endpoint this machine's address).

The PipelineDeployment's status is written as the operator writes it (no operator runs here): the algo is
crash-looping, so its step must be down with that reason, and its pod's restarts show in the panel. Replay is
refused while the user may not create Jobs, with that said in the page; once allowed, it starts a Job that runs
`algorun replay` with the runner's own config.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from algorun.api import load_pipeline
from algorun.api.configs import runner_config
from algorun.console.graph import build_graph
from algorun.local.runtime import local_bus_url
from tests.support.examples import example
from tests.support.kube import KubeAPI
from tests.support.paths import EXAMPLES
from tests.support.procs import ManagedProcess, free_ports, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXAMPLE = EXAMPLES / "retry-dead-letter" / "pipeline.yaml"
ALGO = "algo:shop/charge:1[1]"
SA = "console-user"


def host_address() -> str:
    """This machine's address on its outgoing interface (the API server refuses loopback endpoints)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: connecting a UDP socket only picks the route
        address: str = s.getsockname()[0]
    return address


def ok(answer: tuple[int, Any], *expected: int) -> Any:
    status, body = answer
    assert status in (expected or (200, 201)), body
    return body


def user_kubeconfig(kube: KubeAPI, namespace: str, path: Path) -> Path:
    """A kubeconfig for ServiceAccount `SA` in `namespace` (a token from the TokenRequest API)."""
    ok(kube.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": SA}}))
    token = ok(
        kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{SA}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
        )
    )["status"]["token"]
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [{"name": SA, "context": {"cluster": cluster["name"], "user": SA, "namespace": namespace}}],
        "current-context": SA,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def grant(kube: KubeAPI, namespace: str, name: str, rules: list[dict[str, Any]]) -> None:
    ok(
        kube.request(
            "POST",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
            {"metadata": {"name": name}, "rules": rules},
        )
    )
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": namespace}],
    }
    ok(kube.request("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", binding))


READ = [
    {"apiGroups": ["algo.run"], "resources": ["pipelinedeployments"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]},
]
REPLAY = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
]


@pytest.fixture
def runner_metrics(tmp_path: Path) -> Iterator[int]:
    """A real `algorun runner` of the example's algo, outside the cluster; its health port (all interfaces)."""
    _, topology = load_pipeline([EXAMPLE])
    config = tmp_path / "runner.json"
    config.write_text(json.dumps(runner_config(topology, topology.algos[0]).to_json()))
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "algorun.cli.main", "runner", "--config", str(config), "--health-port", str(port)]
    argv += ["--bus", local_bus_url(tmp_path)]
    process = ManagedProcess("runner", argv, tmp_path / "runner.log")
    try:
        wait_for(
            lambda: "started" in (tmp_path / "runner.log").read_text(), timeout=60, what="the runner", proc=process
        )
        yield port
    finally:
        process.stop(grace=5)


def test_console_on_kubernetes_with_the_users_credentials(
    kube: KubeAPI, page: Any, tmp_path: Path, runner_metrics: int
) -> None:
    namespace = kube.create_namespace("console")
    pd, _ = example("retry-dead-letter", namespace)
    ok(kube.request("POST", f"/apis/algo.run/v1beta1/namespaces/{namespace}/pipelinedeployments", pd))
    status = {
        "status": {
            "status": "Error",
            "componentStatuses": [
                {"componentType": "Endpoint", "name": "Endpoint", "desired": 1, "ready": 1},
                {"componentType": "EventHook", "name": "EventHook", "desired": 1, "ready": 1},
                {
                    "componentType": "Algo",
                    "name": "charge",
                    "version": "1",
                    "index": 1,
                    "desired": 1,
                    "ready": 0,
                    "reason": "CrashLoopBackOff",
                    "message": "pod charge-abc: container runner exited with 1",
                },
            ],
            "podStatuses": [
                {
                    "componentType": "Algo",
                    "name": "charge",
                    "version": "1",
                    "index": 1,
                    "podName": "charge-abc",
                    "status": "CrashLoopBackOff",
                    "restarts": 4,
                },
            ],
        }
    }
    path = f"/apis/algo.run/v1beta1/namespaces/{namespace}/pipelinedeployments/{pd['metadata']['name']}/status"
    ok(kube.request("PATCH", path, status, content_type="application/merge-patch+json"))
    labels = {
        "app.kubernetes.io/component": "algo",
        "algo.run/pipeline-deployment": "shop.payments",
        "algo.run/algo": "shop.charge",
        "algo.run/index": "1",
    }
    service = {
        "metadata": {"name": "charge-metrics", "labels": labels},
        "spec": {"ports": [{"name": "metrics", "port": 10080, "targetPort": runner_metrics}]},
    }
    ok(kube.request("POST", f"/api/v1/namespaces/{namespace}/services", service))
    # The API server proxies only to addresses that are pods: a Pod object (never scheduled: no node here) whose
    # status says it has this machine's address stands for the runner process.
    address = host_address()
    pod = {
        "metadata": {"name": "charge-abc", "labels": labels},
        "spec": {"containers": [{"name": "runner", "image": "x"}]},
    }
    ok(kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod))
    pod_ip = {"status": {"podIP": address, "podIPs": [{"ip": address}]}}
    pod_status = f"/api/v1/namespaces/{namespace}/pods/charge-abc/status"
    ok(kube.request("PATCH", pod_status, pod_ip, content_type="application/merge-patch+json"))
    target = {"kind": "Pod", "name": "charge-abc", "namespace": namespace}
    endpoints = {
        "metadata": {"name": "charge-metrics"},
        "subsets": [
            {
                "addresses": [{"ip": address, "targetRef": target}],
                "ports": [{"name": "metrics", "port": runner_metrics}],
            }
        ],
    }
    ok(kube.request("POST", f"/api/v1/namespaces/{namespace}/endpoints", endpoints))
    kubeconfig = user_kubeconfig(kube, namespace, tmp_path / "user.kubeconfig")
    grant(kube, namespace, "console-read", READ)

    (port,) = free_ports(1)
    log = tmp_path / "console.log"
    argv = [sys.executable, "-m", "algorun.cli.main", "console", "--kubeconfig", str(kubeconfig)]
    console = ManagedProcess("console", [*argv, "--namespace", namespace, "--port", str(port)], log)
    try:
        url = wait_for(
            lambda: re.search(r"console: (http://\S+)", log.read_text()), timeout=30, what="the URL", proc=console
        ).group(1)
        assert url.endswith(f"#{namespace}/{pd['metadata']['name']}")
        page.goto(url)
        algo = page.locator(f'[data-node-id="{ALGO}"]')
        page.wait_for_selector(f'[data-node-id="{ALGO}"][data-state="down"]')
        _, topology = load_pipeline([EXAMPLE])
        expected = {n.id for n in build_graph(topology).nodes}
        assert set(page.eval_on_selector_all("[data-node-id]", "els => els.map(e => e.dataset.nodeId)")) == expected
        assert "CrashLoopBackOff" in (algo.get_attribute("data-reason") or "")
        # The runner's counters came through the service proxy (an empty attribute when they did not).
        try:
            page.wait_for_function(f"""() => document.querySelector('[data-node-id="{ALGO}"]').dataset.errors !== ''""")
        except Exception as exc:
            raise AssertionError(f"no runner counters; the page says: {page.inner_text('#problems')}") from exc
        assert algo.get_attribute("data-in") == "0"  # the runner's consumed count, read the same way
        algo.click()
        page.wait_for_selector('[data-process="charge-abc"]:has-text("4 restarts")')
        assert "does not reach on Kubernetes" in page.inner_text("#panel-body")
        # Replay while the user may not create Jobs: refused, and said so.
        page.click("#replay-all")
        page.click("#confirm-ok")
        page.wait_for_selector('#replay-result:has-text("may not create Jobs")')
        # Allowed: a Job from the runner's pod template runs `algorun replay` with the runner's config.
        grant(kube, namespace, "console-replay", REPLAY)
        deployment = {
            "metadata": {"name": "charge", "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "runner",
                                "image": "algorun/algorun:test",
                                "command": ["algorun", "runner", "--config", "/etc/algorun/runner.json"],
                            },
                            {"name": "algo", "image": "algorun/examples:1"},
                        ]
                    },
                },
            },
        }
        ok(kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment))
        page.click("#replay-all")
        page.click("#confirm-ok")
        page.wait_for_selector('#replay-result:has-text("Job")')
        jobs = ok(kube.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs"))["items"]
        (job,) = jobs
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["algorun", "replay", "--config", "/etc/algorun/runner.json"]
    finally:
        console.stop(grace=5)
