"""Rendering an example as the operator does, with fixed settings (independent of the environment): the operator's
unit tests, its golden files and its integration tests compare against the same render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from algorun.api.documents import load_pipeline
from algorun.api.resources import PipelineDeployment
from algorun.api.topology import Topology
from algorun.operator.render import ClusterFacts, Rendered, render
from algorun.operator.settings import OperatorOptions
from tests.support.paths import EXAMPLES


def example_files(name: str) -> list[Path]:
    directory = EXAMPLES / name
    return [directory / "pipeline.yaml", *sorted(p for p in directory.glob("*.yaml") if p.name != "pipeline.yaml")]


def load(name: str) -> tuple[PipelineDeployment, Topology]:
    return load_pipeline(example_files(name))


def golden_settings(**overrides: Any) -> OperatorOptions:
    """Fixed settings (independent of the environment): the chart's defaults with TLS and tls auth on."""
    values: dict[str, Any] = {
        "algorunner_image": "algorun/algorun:test",
        "endpoint_image": "algorun/algorun:test",
        "hook_image": "algorun/algorun:test",
        "kafka_tls": True,
        "kafka_auth_type": "tls",
        "storage_secret_name": "storage-connection",
        **overrides,
    }
    return OperatorOptions.model_validate(values)


def rendered(name: str, facts: ClusterFacts | None = None, **overrides: Any) -> Rendered:
    pipeline, topology = load(name)
    return render(pipeline, topology, golden_settings(**overrides), facts or ClusterFacts(offline=True))


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
