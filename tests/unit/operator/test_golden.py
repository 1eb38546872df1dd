"""Golden files: `algorun render` output of every example, byte for byte.

A change to what the operator applies shows up as a diff of tests/golden/render/<example>.yaml. Regenerate
after an intended change with `ALGORUN_UPDATE_GOLDEN=1 pytest tests/unit/operator/test_golden.py`.
"""

from __future__ import annotations

import os

import pytest
import yaml

from algorun.cli.operator_commands import render_offline
from tests.support.operator_render import golden_settings, load
from tests.support.paths import EXAMPLES, REPO

GOLDEN = REPO / "tests" / "golden" / "render"
EXAMPLE_NAMES = sorted(p.parent.name for p in EXAMPLES.glob("*/pipeline.yaml"))


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_render_matches_golden_file(name: str) -> None:
    pipeline, topology = load(name)
    text = render_offline(pipeline, topology, golden_settings(), "algorun")
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("ALGORUN_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; create it with ALGORUN_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"render output of {name} changed; review, then ALGORUN_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_render_is_deterministic_and_valid_yaml(name: str) -> None:
    pipeline, topology = load(name)
    first = render_offline(pipeline, topology, golden_settings(), "algorun")
    assert first == render_offline(pipeline, topology, golden_settings(), "algorun")
    documents = list(yaml.safe_load_all(first))
    assert documents
    for doc in documents:
        name_ = doc["metadata"]["name"]
        assert len(name_) <= 63 and name_ == name_.lower(), name_


def test_render_command_prints_manifests_and_refuses_unresolved_references() -> None:
    import typer
    from typer.testing import CliRunner

    from algorun.cli import operator_commands

    app = typer.Typer()
    operator_commands.register(app)
    sample = EXAMPLES / "original-sample"
    ok = CliRunner().invoke(app, ["render", str(sample / "pipeline.yaml"), str(sample / "sample-algo.yaml")])
    assert ok.exit_code == 0, ok.output
    kinds = {d["kind"] for d in yaml.safe_load_all(ok.output)}
    assert {"Deployment", "KafkaTopic", "Mapping"} <= kinds
    missing = CliRunner().invoke(app, ["render", str(sample / "pipeline.yaml")])
    assert missing.exit_code == 1
    assert f"{sample / 'pipeline.yaml'}:27:7: spec.algos[0].algoRef: no Algo" in missing.output
