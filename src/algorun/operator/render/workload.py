"""Pieces shared by the algo, endpoint and hook workloads: probes, resources, images, HPAs, config hashes.

User probes keep their handler; every resource name in requests and limits is kept; `imagePullPolicy: Always`
is honoured; HPAs use `autoscaling/v2`, live in the workload's namespace and target the workload's real kind,
and an autoscaled workload leaves `replicas` to its HPA, so a reconcile never fights the autoscaler.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from algorun.api.base import AutoScaling, ContainerImage, Probe, ResourceRequirements, ScaleMetric
from algorun.api.enums import ImagePullPolicy, MetricSourceType, MetricTargetType


def image_of(
    image: ContainerImage | None, default: str, default_policy: ImagePullPolicy | None = None
) -> tuple[str, str | None]:
    """(image reference, pull policy) of a spec image, or the default image (with the chart's pull policy for
    it) when the spec gives no repository."""
    if image is None or not image.repository:
        policy = image.image_pull_policy if image and image.image_pull_policy else default_policy
        return default, policy.value if policy else None
    return image.reference(), image.image_pull_policy.value if image.image_pull_policy else None


def probe(spec: Probe | None, default: dict[str, Any] | None) -> dict[str, Any] | None:
    """The user's probe with its handler, or `default` when the user gave none (or gave only timings)."""
    if spec is None:
        return default
    out: dict[str, Any] = {}
    if spec.exec is not None:
        out["exec"] = {"command": list(spec.exec.command)}
    elif spec.http_get is not None:
        http: dict[str, Any] = {"port": spec.http_get.port, "path": spec.http_get.path or "/"}
        if spec.http_get.scheme:
            http["scheme"] = spec.http_get.scheme.upper()
        if spec.http_get.host:
            http["host"] = spec.http_get.host
        if spec.http_get.http_headers:
            http["httpHeaders"] = [{"name": h.name, "value": h.value} for h in spec.http_get.http_headers]
        out["httpGet"] = http
    elif spec.tcp_socket is not None:
        tcp: dict[str, Any] = {"port": spec.tcp_socket.port}
        if spec.tcp_socket.host:
            tcp["host"] = spec.tcp_socket.host
        out["tcpSocket"] = tcp
    elif default is not None:
        out = {k: v for k, v in default.items() if k in ("httpGet", "exec", "tcpSocket", "grpc")}
    else:
        return None
    for key in (
        "initial_delay_seconds",
        "period_seconds",
        "timeout_seconds",
        "success_threshold",
        "failure_threshold",
    ):
        value = getattr(spec, key)
        if value is not None:
            out[_camel(key)] = value
    return out


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(p.title() for p in rest)


def health_probe(
    port: int | str, *, path: str = "/health", initial_delay: int = 0, period: int = 10, timeout: int = 1
) -> dict[str, Any]:
    probe_: dict[str, Any] = {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    if initial_delay:
        probe_["initialDelaySeconds"] = initial_delay
    return probe_


def resources(spec: ResourceRequirements | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    out: dict[str, Any] = {}
    if spec.limits:
        out["limits"] = {k: str(v) for k, v in sorted(spec.limits.items())}
    if spec.requests:
        out["requests"] = {k: str(v) for k, v in sorted(spec.requests.items())}
    return out or None


def autoscaled(autoscaling: AutoScaling | None) -> bool:
    return bool(autoscaling and autoscaling.enabled)


def hpa(
    meta: dict[str, Any], target_kind: str, target_name: str, autoscaling: AutoScaling, replicas: int
) -> dict[str, Any]:
    """An autoscaling/v2 HorizontalPodAutoscaler for a Deployment or StatefulSet."""
    min_replicas = max(autoscaling.min_replicas, 1)
    max_replicas = autoscaling.max_replicas or max(min_replicas, replicas, 1)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target_name},
        "minReplicas": min_replicas,
        "maxReplicas": max(max_replicas, min_replicas),
    }
    metrics = [hpa_metric(m) for m in autoscaling.metrics or []]
    if metrics:
        spec["metrics"] = metrics
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta, "spec": spec}


def _target(metric: ScaleMetric) -> dict[str, Any]:
    if metric.target_type == MetricTargetType.VALUE and metric.value is not None:
        return {"type": "Value", "value": str(metric.value)}
    if metric.target_type == MetricTargetType.AVERAGE_VALUE and metric.average_value is not None:
        return {"type": "AverageValue", "averageValue": str(metric.average_value)}
    return {"type": "Utilization", "averageUtilization": metric.average_utilization or 90}


def _selector(text: str | None) -> dict[str, Any] | None:
    """A `metricSelector` string (`a=b,c=d`) as a label selector."""
    if not text:
        return None
    labels = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep:
            labels[key.strip()] = value.strip().lstrip("=")
    return {"matchLabels": labels} if labels else None


def hpa_metric(metric: ScaleMetric) -> dict[str, Any]:
    target = _target(metric)
    named: dict[str, Any] = {"name": metric.metric_name or ""}
    selector = _selector(metric.metric_selector)
    if selector:
        named["selector"] = selector
    if metric.source_type == MetricSourceType.RESOURCE:
        return {"type": "Resource", "resource": {"name": metric.resource_name or "cpu", "target": target}}
    if metric.source_type == MetricSourceType.PODS:
        return {"type": "Pods", "pods": {"metric": named, "target": target}}
    if metric.source_type == MetricSourceType.OBJECT:
        described = {
            "apiVersion": metric.object_api_version or "v1",
            "kind": metric.object_kind or "",
            "name": metric.object_name or "",
        }
        return {"type": "Object", "object": {"describedObject": described, "metric": named, "target": target}}
    return {"type": "External", "external": {"metric": named, "target": target}}


def content_hash(data: Any) -> str:
    """A short stable digest of JSON-able data (pod-template annotation that rolls pods on config changes)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def listen_port(listen: str | None, default: int) -> int:
    """The port of a `listen` value: `:18080`, `0.0.0.0:18080`, `http://host:18080` or `18080`.

    A value without a port keeps the default.
    """
    if not listen:
        return default
    match = re.search(r":(\d{1,5})/?$", listen.strip()) or re.fullmatch(r"(\d{1,5})", listen.strip())
    if match and 0 < int(match.group(1)) < 65536:
        return int(match.group(1))
    return default


def pod_annotations(owner_key: str, config: Any) -> dict[str, str]:
    """Pod-template annotations: a config digest (a config change rolls the pods) and the owning deployment
    (so pod events can be traced back to their PipelineDeployment)."""
    from algorun.operator.render.labels import CONFIG_HASH_ANNOTATION, OWNER_ANNOTATION

    return {CONFIG_HASH_ANNOTATION: content_hash(config), OWNER_ANNOTATION: owner_key}
