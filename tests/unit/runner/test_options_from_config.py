"""Runner options come from the pipeline YAML (via the runner config), then ALGORUN_RUNNER_* variables, then
CLI options."""

from __future__ import annotations

from algorun.api import check_text
from algorun.api.configs import runner_config
from algorun.api.topology import build_topology
from algorun.runner.config import RunnerOptions
from tests.support.paths import EXAMPLES

EXAMPLE = EXAMPLES / "text-transform" / "pipeline.yaml"


def config_with(extra_instance: str, extra_algo: str) -> object:
    text = EXAMPLE.read_text()
    text = text.replace(
        "      spec:\n        owner: demo\n        name: wordcount\n        executor: Executable\n",
        f"      {extra_instance}\n      spec:\n        owner: demo\n        name: wordcount\n"
        f"        executor: Executable\n        {extra_algo}\n",
    )
    report = check_text(text)
    assert report.ok, report.problems
    topology = build_topology(report.pipelines()[0].spec)
    node = topology.algo("demo/wordcount:1[1]")
    assert node is not None
    return runner_config(topology, node)


def test_yaml_settings_reach_the_runner_and_env_and_cli_override_them() -> None:
    config = config_with("concurrency: 8", "executableMode: streaming")
    options = RunnerOptions.from_env({}, config=config)  # type: ignore[arg-type]
    assert options.exec_mode == "streaming" and options.concurrency == 8
    options = RunnerOptions.from_env({"ALGORUN_RUNNER_CONCURRENCY": "4"}, config=config)  # type: ignore[arg-type]
    assert options.concurrency == 4
    options = RunnerOptions.from_env({"ALGORUN_RUNNER_CONCURRENCY": "4"}, config=config, concurrency=2)  # type: ignore[arg-type]
    assert options.concurrency == 2


def test_defaults_when_the_yaml_says_nothing() -> None:
    config = config_with("replicas: 1", "stderrPolicy: fail")
    options = RunnerOptions.from_env({}, config=config)  # type: ignore[arg-type]
    assert options.exec_mode == "per-message" and options.stderr_policy == "fail" and options.concurrency == 64
