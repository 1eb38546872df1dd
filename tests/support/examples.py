"""The repository's example pipelines (examples/<name>/*.yaml), as the operator and chart tests deploy them."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tests.support.paths import EXAMPLES


def example(name: str, namespace: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An example's PipelineDeployment (moved into `namespace`, deploying there) and its templates."""
    docs = [d for p in sorted((EXAMPLES / name).glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    pd = copy.deepcopy(next(d for d in docs if d["kind"] == "PipelineDeployment"))
    pd["metadata"]["namespace"] = namespace
    pd["spec"].pop("deploymentNamespace", None)
    return pd, [d for d in docs if d["kind"] != "PipelineDeployment"]
