"""CustomResourceDefinitions (apiextensions.k8s.io/v1) generated from the api models.

The models are the one source of truth; this turns their JSON schema into Kubernetes *structural* schemas:
`$ref`s inlined, optional types unwrapped (no `anyOf` except the int-or-string form Kubernetes allows), maps as
`additionalProperties`, free-form objects marked `x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from algorun.api.algo import AlgoSpec
from algorun.api.dataconnector import DataConnectorSpec
from algorun.api.pipeline import PipelineDeploymentSpec
from algorun.api.resources import GROUP, VERSION
from algorun.api.status import PipelineDeploymentStatus

Schema = dict[str, Any]
_DROP = {"title", "discriminator"}


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of a model (validation mode: what a user may write)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs)


def _convert(node: Schema, defs: dict[str, Schema]) -> Schema:
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _convert({**target, **extra}, defs)
    node = {k: v for k, v in node.items() if k not in _DROP}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {len(options)} types structurally: {options}")
        merged = {**_convert(options[0], defs), **{k: v for k, v in node.items() if k != "default"}}
        if node.get("default") is not None:
            merged["default"] = node["default"]
        return merged
    if node.get("default", 0) is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("type") == "object":
        additional = node.pop("additionalProperties", None)
        if "properties" in node:
            node["properties"] = {k: _convert(v, defs) for k, v in node["properties"].items()}
        elif isinstance(additional, dict) and additional:
            node["additionalProperties"] = _convert(additional, defs)
        else:
            node["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("type") == "array" and "items" in node:
        node["items"] = _convert(node["items"], defs)
    return node


def structural_problems(schema: Schema, path: str = "") -> list[str]:
    """Why `schema` is not structural (empty when it is): the rules the API server enforces."""
    problems: list[str] = []
    if "$ref" in schema:
        problems.append(f"{path}: $ref")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if "anyOf" in schema and not int_or_string:
        problems.append(f"{path}: anyOf outside x-kubernetes-int-or-string")
    if "type" not in schema and not (int_or_string or schema.get("x-kubernetes-preserve-unknown-fields")):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: both properties and additionalProperties")
    for name, sub in schema.get("properties", {}).items():
        problems.extend(structural_problems(sub, f"{path}.{name}"))
    if isinstance(schema.get("additionalProperties"), dict):
        problems.extend(structural_problems(schema["additionalProperties"], f"{path}.*"))
    if "items" in schema:
        problems.extend(structural_problems(schema["items"], f"{path}[]"))
    return problems


def _envelope(spec: Schema, status: Schema | None, description: str) -> Schema:
    properties: Schema = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec,
    }
    if status is not None:
        properties["status"] = status
    return {"type": "object", "description": description, "required": ["spec"], "properties": properties}


def _crd(
    kind: str,
    plural: str,
    scope: str,
    short_names: list[str],
    schema: Schema,
    columns: list[dict[str, str | int]],
    status: bool,
) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "additionalPrinterColumns": [
            *columns,
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "algo.run"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["algorun"],
            },
            "scope": scope,
            "versions": [version],
        },
    }


DEGRADED = '.status.conditions[?(@.type=="Degraded")]'
"""JSONPath of the PipelineDeployment's Degraded condition (printer columns)."""


def generate_crds() -> list[dict[str, Any]]:
    """The three algo.run CRDs: Algo, DataConnector (cluster-scoped templates) and PipelineDeployment."""
    return [
        _crd(
            "Algo",
            "algos",
            "Cluster",
            ["alg"],
            _envelope(structural_schema(AlgoSpec), None, "A processing node template, referenced by algoRef."),
            [
                {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"},
                {"name": "Algo", "type": "string", "jsonPath": ".spec.name"},
                {"name": "Executor", "type": "string", "jsonPath": ".spec.executor"},
            ],
            status=False,
        ),
        _crd(
            "DataConnector",
            "dataconnectors",
            "Cluster",
            ["dcon"],
            _envelope(
                structural_schema(DataConnectorSpec),
                None,
                "A Kafka Connect connector template, by dataConnectorRef.",
            ),
            [
                {"name": "Type", "type": "string", "jsonPath": ".spec.dataConnectorType"},
                {"name": "Class", "type": "string", "jsonPath": ".spec.connectorClass"},
            ],
            status=False,
        ),
        _crd(
            "PipelineDeployment",
            "pipelinedeployments",
            "Namespaced",
            ["pd", "pipedeploy"],
            _envelope(
                structural_schema(PipelineDeploymentSpec),
                structural_schema(PipelineDeploymentStatus),
                "A data pipeline: algos, data connectors, an endpoint, event hooks and the pipes between them.",
            ),
            [
                {"name": "Status", "type": "string", "jsonPath": ".status.status"},
                # the Degraded reason: AsExpected, or why it is not (InvalidSpec, ImagePullBackOff...)
                {"name": "Reason", "type": "string", "jsonPath": DEGRADED + ".reason"},
                {"name": "Algos", "type": "integer", "jsonPath": ".status.algoCount"},
                {"name": "Owner", "type": "string", "jsonPath": ".spec.deploymentOwner", "priority": 1},
                {"name": "Deployment", "type": "string", "jsonPath": ".spec.deploymentName", "priority": 1},
                {"name": "Message", "type": "string", "jsonPath": DEGRADED + ".message", "priority": 1},
            ],
            status=True,
        ),
    ]


def crd_file_name(crd: dict[str, Any]) -> str:
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"
