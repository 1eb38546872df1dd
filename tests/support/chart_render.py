"""The chart's integration tests' helpers: render with the real helm, send what it renders to the real API server."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.support.helm import Helm
from tests.support.kube import KubeAPI
from tests.support.paths import CHART

SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"


def render(
    helm: Helm,
    tmp_path: Path,
    values: dict[str, Any],
    *,
    release: str = "algorun-pipeline-operator",
    namespace: str = "algorun",
    api_versions: tuple[str, ...] = (SERVICE_MONITOR_API,),
) -> list[dict[str, Any]]:
    """`helm template` of the chart with `values`; the non-empty documents (hooks included). `api_versions`: what
    the cluster serves beyond the built-in kinds (helm's `--api-versions`); by default the Prometheus operator's
    ServiceMonitor, as on the test bed's API server."""
    values_file = tmp_path / f"values-{release}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    extra = [arg for api in api_versions for arg in ("--api-versions", api)]
    out = helm.run("template", release, str(CHART), "--namespace", namespace, "-f", str(values_file), *extra).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def container_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator container's env, as name -> value (or the valueFrom dict)."""
    (deployment,) = find(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


class Discovery:
    """kind -> (plural, namespaced) for every group version the API server serves."""

    def __init__(self, kube: KubeAPI) -> None:
        self.kube = kube
        self._cache: dict[str, dict[str, tuple[str, bool]]] = {}

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        if api_version not in self._cache:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            status, body = self.kube.request("GET", path)
            assert status == 200, f"{api_version} is not served: {body}"
            self._cache[api_version] = {
                r["kind"]: (r["name"], r["namespaced"]) for r in body["resources"] if "/" not in r["name"]
            }
        return self._cache[api_version][kind]

    def path(self, obj: dict[str, Any], default_namespace: str) -> str:
        api_version, kind = obj["apiVersion"], obj["kind"]
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        name = obj["metadata"]["name"]
        if namespaced:
            namespace = obj["metadata"].get("namespace") or default_namespace
            return f"{base}/namespaces/{namespace}/{plural}/{name}"
        return f"{base}/{plural}/{name}"


def server_apply(
    kube: KubeAPI,
    discovery: Discovery,
    obj: dict[str, Any],
    namespace: str,
    *,
    dry_run: bool,
    manager: str = "chart-tests",
) -> tuple[int, Any]:
    """Server-side apply one object (optionally as a dry run); (HTTP status, decoded body)."""
    query = {"fieldManager": manager, "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    url = kube.server + discovery.path(obj, namespace) + "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(
        url,
        data=json.dumps(obj).encode(),
        method="PATCH",
        headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
    )
    context: ssl.SSLContext = kube.ssl_context()
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def ensure_namespace(kube: KubeAPI, name: str) -> None:
    status, body = kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status in (201, 409), body
