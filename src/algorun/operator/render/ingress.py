"""Routes from the cluster's ingress to the endpoint: Emissary Mappings or Gateway API HTTPRoutes.

`ENDPOINT_ROUTING` chooses: `ambassador` (default; getambassador.io/v3alpha1 Mappings), `gateway`
(gateway.networking.k8s.io/v1 HTTPRoutes attached to `GATEWAY_NAME` in `GATEWAY_NAMESPACE`) or `none`. The URLs are
the ones existing clients call (docs/compat.md): `/run/http/{owner}/{name}/` and `/run/grpc/{owner}/{name}/`,
rewritten to `/{owner}/{name}/`. gRPC through a Gateway uses an HTTPRoute (a
GRPCRoute cannot match a path prefix); the Service's grpc port declares `appProtocol: kubernetes.io/h2c`.
When the endpoint serves TLS (`ENDPOINT_TLS_ISSUER`), Mappings name an `https://` service, so Emissary
originates TLS to it.
"""

from __future__ import annotations

from typing import Any

from algorun.operator.render import endpoint
from algorun.operator.render.context import RenderContext
from algorun.operator.render.labels import MAPPING_PROTOCOL, common_labels, metadata, suffixed
from algorun.operator.settings import Routing


def prefixes(ctx: RenderContext) -> dict[str, str]:
    return {
        "http": f"/run/http/{ctx.owner}/{ctx.name}/",
        "grpc": f"/run/grpc/{ctx.owner}/{ctx.name}/",
    }


def rewrite(ctx: RenderContext) -> str:
    return f"/{ctx.owner}/{ctx.name}/"


def render_routing(ctx: RenderContext) -> list[dict[str, Any]]:
    if not ctx.topology.spec.endpoint.paths:
        return []
    routing = ctx.settings.endpoint_routing
    if routing == Routing.AMBASSADOR:
        return _mappings(ctx)
    if routing == Routing.GATEWAY:
        return _routes(ctx)
    return []


def _mappings(ctx: RenderContext) -> list[dict[str, Any]]:
    http_port, grpc_port, _ = endpoint.ports(ctx)
    service = f"{endpoint.service_name(ctx)}.{ctx.ns}"
    scheme = "https://" if endpoint.serves_tls(ctx) else ""
    out = []
    for protocol, port in (("http", http_port), ("grpc", grpc_port)):
        labels = {**common_labels(ctx.ident, "mapping"), MAPPING_PROTOCOL: protocol}
        spec: dict[str, Any] = {
            "hostname": ctx.settings.ambassador_hostname,
            "prefix": prefixes(ctx)[protocol],
            "rewrite": rewrite(ctx),
            "service": f"{scheme}{service}:{port}",
        }
        if protocol == "grpc":
            spec["grpc"] = True
        out.append(
            {
                "apiVersion": "getambassador.io/v3alpha1",
                "kind": "Mapping",
                "metadata": metadata(ctx.ident, suffixed(f"endpoint-{protocol}", ctx.owner, ctx.name), ctx.ns, labels),
                "spec": spec,
            }
        )
    return out


def _routes(ctx: RenderContext) -> list[dict[str, Any]]:
    http_port, grpc_port, _ = endpoint.ports(ctx)
    parent: dict[str, Any] = {"name": ctx.settings.gateway_name}
    if ctx.settings.gateway_namespace:
        parent["namespace"] = ctx.settings.gateway_namespace
    out = []
    for protocol, port in (("http", http_port), ("grpc", grpc_port)):
        labels = {**common_labels(ctx.ident, "mapping"), MAPPING_PROTOCOL: protocol}
        rule = {
            "matches": [{"path": {"type": "PathPrefix", "value": prefixes(ctx)[protocol]}}],
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": rewrite(ctx)}},
                }
            ],
            "backendRefs": [{"name": endpoint.service_name(ctx), "port": port}],
        }
        out.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": metadata(ctx.ident, suffixed(f"endpoint-{protocol}", ctx.owner, ctx.name), ctx.ns, labels),
                "spec": {"parentRefs": [parent], "rules": [rule]},
            }
        )
    return out
