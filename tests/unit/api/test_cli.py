"""The `algorun` command: exit codes, JSON output, help on every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from algorun import __version__
from algorun.cli.main import app
from tests.support.paths import EXAMPLES

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"algorun {__version__}"


@pytest.mark.parametrize("command", [[], ["validate"], ["describe"], ["crds"]])
def test_help_on_every_command(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_validate_valid_files_exits_0() -> None:
    result = runner.invoke(app, ["validate", *map(str, sorted(EXAMPLES.glob("*/*.yaml")))])
    assert result.exit_code == 0, result.output


def test_validate_json_reports_problems_with_positions(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "text-transform" / "pipeline.yaml").read_text().replace("index: 1", "index: -1", 1))
    result = runner.invoke(app, ["validate", "--output", "json", str(bad)])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["valid"] is False
    (problem,) = payload["problems"]
    assert problem["path"] == "spec.algos[0].index" and problem["file"] == str(bad) and problem["line"] > 0


def test_validate_prints_positions_and_names_literally(tmp_path: Path) -> None:
    """Line 100 column 5 once printed as an emoji (rich read ":100:" as an emoji code), and a name in square
    brackets would have been read as markup."""
    text = (EXAMPLES / "text-transform" / "pipeline.yaml").read_text()
    bad = tmp_path / "[bold]bad.yaml"
    bad.write_text("#\n" * 99 + text.replace("index: 1", "index: -1", 1))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:1" in result.output and ": spec.algos[0].index:" in result.output, result.output


def test_validate_missing_file_exits_1() -> None:
    result = runner.invoke(app, ["validate", "does-not-exist.yaml"])
    assert result.exit_code == 1 and "no such file" in result.output


def test_describe_shows_components_topics_and_pipes() -> None:
    result = runner.invoke(
        app, ["describe", str(EXAMPLES / "retry-dead-letter" / "pipeline.yaml")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0
    for text in (
        "shop/charge:1[1]",
        "algorun.shop.payments.charge.1.retry.2s",
        "algorun.shop.payments.charge.1.failed",
        "Pipes",
    ):
        assert text in result.output


def test_crds_prints_three_crds(tmp_path: Path) -> None:
    result = runner.invoke(app, ["crds"])
    assert result.exit_code == 0
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(result.output)]
    assert names == ["algos.algo.run", "dataconnectors.algo.run", "pipelinedeployments.algo.run"]
    result = runner.invoke(app, ["crds", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0 and len(list(tmp_path.glob("*.yaml"))) == 3


SAMPLE_ALGO_REF_MISSING = (
    '27:7: spec.algos[0].algoRef: no Algo with name "my-test-text-transform-http" among the given documents; '
    "give its YAML file too (for example: pipeline.yaml algo.yaml), or the algo inline as spec"
)


@pytest.mark.parametrize("command", ["validate", "render", "describe"])
def test_an_algo_ref_without_its_algo_is_reported_at_the_reference(command: str) -> None:
    """The original sample's pipeline alone: the one problem is its algoRef, at its line and column, saying how to
    give the Algo; nothing is said about the hook input the unresolved algo feeds."""
    pipeline = EXAMPLES / "original-sample" / "pipeline.yaml"
    result = runner.invoke(app, [command, str(pipeline)])
    assert result.exit_code == 1
    lines = " ".join(result.output.split())
    assert f"{pipeline}:{SAMPLE_ALGO_REF_MISSING}" in lines, result.output
    assert "no pipe feeds" not in lines and "not resolved" not in lines


def test_validate_json_gives_the_algo_ref_position() -> None:
    pipeline = EXAMPLES / "original-sample" / "pipeline.yaml"
    result = runner.invoke(app, ["validate", "--output", "json", str(pipeline)])
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    position = f"{problem['line']}:{problem['column']}: {problem['path']}: {problem['message']}"
    assert (problem["file"], position) == (str(pipeline), SAMPLE_ALGO_REF_MISSING)
