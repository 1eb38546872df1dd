"""The event-hook runner: config ConfigMap (mounted where the hook runner reads it), Deployment and HPA.

The HPA follows the hook's own `eventHook.autoscaling` (enabled there), whatever the endpoint's says.
"""

from __future__ import annotations

import json
from typing import Any

from algorun.api import configs
from algorun.operator.render import security
from algorun.operator.render.context import RenderContext
from algorun.operator.render.labels import COMPONENT, PART_OF, PIPELINE_DEPLOYMENT, common_labels, metadata, suffixed
from algorun.operator.render.workload import (
    autoscaled,
    health_probe,
    hpa,
    image_of,
    pod_annotations,
    probe,
    resources,
)

HOOK_PORT = 10080
CONFIG_KEY = "hook-config"
CONFIG_DIR = "/hook-config"
CONFIG_FILE = "hook-config.json"


def name(ctx: RenderContext) -> str:
    return suffixed("hook", ctx.owner, ctx.name)


def render_hook(ctx: RenderContext) -> list[dict[str, Any]]:
    hook = ctx.topology.spec.event_hook
    if not hook.web_hooks:
        return []
    labels = common_labels(ctx.ident, "hook")
    selector = {k: labels[k] for k in (PART_OF, COMPONENT, PIPELINE_DEPLOYMENT)}
    config_name = suffixed("hook-config", ctx.owner, ctx.name)
    data = {CONFIG_KEY: json.dumps(configs.hook_config(ctx.topology).to_json(), indent=2, sort_keys=True)}
    image, pull = image_of(hook.image, ctx.settings.hook_image, ctx.settings.hook_image_pull_policy)
    default_probe = health_probe(HOOK_PORT, initial_delay=10, period=20, timeout=10)
    container: dict[str, Any] = {
        "name": "hook",
        "image": image,
        "command": ["algorun", "hook", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": [*security.kafka_env(ctx), *_signing_env(ctx)],
        "ports": [{"name": "metrics", "containerPort": HOOK_PORT, "protocol": "TCP"}],
        "volumeMounts": [
            {"name": "hook-config", "mountPath": CONFIG_DIR, "readOnly": True},
            *security.secret_mounts(ctx),
        ],
    }
    if pull:
        container["imagePullPolicy"] = pull
    for key, user_probe in (("livenessProbe", hook.liveness_probe), ("readinessProbe", hook.readiness_probe)):
        value = probe(user_probe, default_probe)
        if value:
            container[key] = value
    res = resources(hook.resources)
    if res:
        container["resources"] = res
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": 10,
        "template": {
            "metadata": {"labels": labels, "annotations": pod_annotations(ctx.ident.owner_key, data)},
            "spec": {
                "containers": [container],
                "volumes": [
                    {
                        "name": "hook-config",
                        "configMap": {
                            "name": config_name,
                            "defaultMode": 0o444,
                            "items": [{"key": CONFIG_KEY, "path": CONFIG_FILE}],
                        },
                    },
                    *security.secret_volumes(ctx),
                ],
            },
        },
    }
    if not autoscaled(hook.autoscaling):
        spec["replicas"] = hook.replicas
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(ctx.ident, config_name, ctx.ns, labels),
            "data": data,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(ctx.ident, name(ctx), ctx.ns, labels),
            "spec": spec,
        },
        {
            # What the chart's hook ServiceMonitor selects (component=hook, port "metrics"): the hook runner's
            # deliveries, failures and backlog are scraped through it.
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(ctx.ident, name(ctx), ctx.ns, labels),
            "spec": {
                "selector": selector,
                "ports": [{"name": "metrics", "port": HOOK_PORT, "targetPort": HOOK_PORT, "protocol": "TCP"}],
            },
        },
    ]
    if autoscaled(hook.autoscaling):
        assert hook.autoscaling is not None
        meta = metadata(ctx.ident, name(ctx), ctx.ns, common_labels(ctx.ident, "hook-hpa"))
        objects.append(hpa(meta, "Deployment", name(ctx), hook.autoscaling, hook.replicas))
    return objects


def signing_secret_name(ctx: RenderContext) -> str:
    """The optional Secret that holds the webhooks' signing secrets (see docs/hooks.md)."""
    return f"{name(ctx)}-secrets"[:253]


def _signing_env(ctx: RenderContext) -> list[dict[str, Any]]:
    """Signing secrets from the user's optional Secret: a pipeline runs (unsigned) until it exists."""
    secret = signing_secret_name(ctx)
    return [
        {
            "name": env,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
        }
        for env, key in (("ALGORUN_HOOK_SECRET", "secret"), ("ALGORUN_HOOK_SECRETS", "secrets.json"))
    ]
