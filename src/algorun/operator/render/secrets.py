"""Copies of the Kafka CA and user secrets in the deployment namespace, one set per PipelineDeployment.

Pods can only mount secrets of their own namespace, and Strimzi writes the cluster CA and the user's
credentials in the Kafka namespace. Each deployment gets its own copies, named after it and owned by it, so
deleting one pipeline never removes a secret another pipeline mounts. A copy is only rendered once its source
exists: an empty copy, made before Strimzi has issued the user's certificate, would be mounted as it is.
"""

from __future__ import annotations

from typing import Any

from algorun.operator.render import security
from algorun.operator.render.context import RenderContext
from algorun.operator.render.labels import common_labels, metadata


def _secret(ctx: RenderContext, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(ctx.ident, name, ctx.ns, common_labels(ctx.ident, "kafka-secret")),
        "data": dict(sorted(data.items())),
    }


def render_secrets(ctx: RenderContext) -> list[dict[str, Any]]:
    s = ctx.settings
    out: list[dict[str, Any]] = []
    if s.kafka_tls:
        if ctx.facts.ca_secret_data:
            out.append(_secret(ctx, security.ca_secret_name(ctx), ctx.facts.ca_secret_data))
        elif not ctx.facts.offline:
            ctx.notes.append(
                f"waiting for the Kafka CA secret {s.kafka_tls_ca_secretname!r} in namespace {s.kafka_namespace!r}"
            )
    if s.kafka_auth_type.value:
        source = s.kafka_user_secret_source(ctx.owner, ctx.name)
        if ctx.facts.user_secret_data:
            out.append(_secret(ctx, security.user_secret_name(ctx), ctx.facts.user_secret_data))
        elif not ctx.facts.offline:
            ctx.notes.append(f"waiting for the Kafka user secret {source!r} in namespace {s.kafka_namespace!r}")
    return out
