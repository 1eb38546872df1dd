"""A setting that cannot work stops a component before it starts, with one line naming the variable or option
that gave the value and the value (`algorun.settings.SettingsError`), and every command exits 2 on it.

Per component: a non-number, a negative count, an unknown choice, and an empty variable (which counts as unset).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from algorun.api import check_text
from algorun.api.configs import HookConfig, runner_config
from algorun.api.topology import build_topology
from algorun.bus import ConfigError, KafkaSettings
from algorun.cli.main import app
from algorun.endpoint.settings import EndpointOptions, build_settings
from algorun.hooks.settings import HookOptions
from algorun.hooks.settings import build_settings as build_hook_settings
from algorun.operator.settings import OperatorOptions
from algorun.runner.config import RunnerOptions
from algorun.settings import SettingsError
from algorun.storage.settings import DEFAULT_THRESHOLD, component_settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "text-transform" / "pipeline.yaml"


def _topology():  # type: ignore[no-untyped-def]
    report = check_text(EXAMPLE.read_text())
    assert report.ok, report.problems
    return build_topology(report.pipelines()[0].spec)


@pytest.mark.parametrize(
    ("env", "options", "line"),
    [
        (
            {"ALGORUN_RUNNER_CONCURRENCY": "many"},
            {},
            "ALGORUN_RUNNER_CONCURRENCY='many': Input should be a valid integer",
        ),
        (
            {"ALGORUN_RUNNER_WORKERS": "-2"},
            {},
            "ALGORUN_RUNNER_WORKERS='-2': Input should be greater than or equal to 1",
        ),
        ({"ALGORUN_RUNNER_STDERR_POLICY": "shout"}, {}, "ALGORUN_RUNNER_STDERR_POLICY='shout': use log or fail"),
        ({}, {"grace_seconds": -1.0}, "--grace=-1.0: Input should be greater than or equal to 0"),
        ({"ALGORUN_RUNNER_SESSION_TIMEOUT_MS": "45s"}, {}, "ALGORUN_RUNNER_SESSION_TIMEOUT_MS='45s'"),
    ],
)
def test_runner_refuses_naming_the_variable_or_option(
    env: dict[str, str], options: dict[str, object], line: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        RunnerOptions.from_env(env, **options)
    assert str(caught.value).startswith(line)
    assert "\n" not in str(caught.value)


def test_runner_names_the_config_runtime_block_when_the_yaml_gave_the_value() -> None:
    with pytest.raises(SettingsError, match=r"^config runtime\.concurrency=0: Input should be greater than or equal"):
        RunnerOptions.from_env({}, lower={"concurrency": 0})


def test_an_empty_variable_counts_as_unset() -> None:
    assert RunnerOptions.from_env({"ALGORUN_RUNNER_CONCURRENCY": ""}).concurrency == 64
    assert EndpointOptions.from_env({"ALGORUN_ENDPOINT_MAX_BODY_BYTES": ""}).max_body_bytes == 1_000_000
    assert HookOptions.from_env({"ALGORUN_HOOK_TIMEOUT": ""}).timeout_seconds == 10.0
    storage = component_settings({"AWS_ENDPOINT_URL": "http://s3:9000", "ALGORUN_STORAGE_THRESHOLD": ""}, "a", "b")
    assert storage is not None and storage.threshold == DEFAULT_THRESHOLD


def test_the_kafka_consumer_settings_come_from_the_runner_settings() -> None:
    options = RunnerOptions.from_env(
        {"ALGORUN_RUNNER_SESSION_TIMEOUT_MS": "6000", "ALGORUN_RUNNER_GROUP_INSTANCE_ID": "pod-0"}
    )
    assert options.consumer_config() == {"session.timeout.ms": 6000, "group.instance.id": "pod-0"}
    assert RunnerOptions.from_env({}).consumer_config() == {}


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"ALGORUN_ENDPOINT_MAX_IN_FLIGHT": "lots"}, "ALGORUN_ENDPOINT_MAX_IN_FLIGHT='lots': Input should be a valid"),
        ({"ALGORUN_ENDPOINT_MAX_BODY_BYTES": "-1"}, "ALGORUN_ENDPOINT_MAX_BODY_BYTES='-1': Input should be greater"),
        ({"ALGORUN_ENDPOINT_ACK_TIMEOUT": "0"}, "ALGORUN_ENDPOINT_ACK_TIMEOUT='0': Input should be greater than 0"),
        ({"EP_SERVER_HTTP_LISTEN": "nowhere"}, 'server.http.listen: "nowhere" is not host:port'),
    ],
)
def test_endpoint_refuses_naming_the_variable(env: dict[str, str], line: str) -> None:
    from algorun.api.configs import endpoint_config

    with pytest.raises(SettingsError) as caught:
        build_settings(endpoint_config(_topology()), env)
    assert str(caught.value).startswith(line)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"ALGORUN_HOOK_CONCURRENCY": "eight"}, "ALGORUN_HOOK_CONCURRENCY='eight': Input should be a valid integer"),
        (
            {"ALGORUN_HOOK_MAX_BACKLOG": "-5"},
            "ALGORUN_HOOK_MAX_BACKLOG='-5': Input should be greater than or equal to 0",
        ),
        ({"ALGORUN_HOOK_VERIFY_TLS": "perhaps"}, "ALGORUN_HOOK_VERIFY_TLS='perhaps': Input should be a valid boolean"),
        ({"ALGORUN_HOOK_RETRY_BUDGET": "inf"}, "ALGORUN_HOOK_RETRY_BUDGET='inf': Input should be a finite number"),
    ],
)
def test_hook_runner_refuses_naming_the_variable(env: dict[str, str], line: str) -> None:
    from algorun.api.configs import hook_config

    config: HookConfig = hook_config(_topology())
    with pytest.raises(SettingsError) as caught:
        build_hook_settings(config, env)
    assert str(caught.value).startswith(line)


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("METRICS_PORT", "http", "METRICS_PORT='http': Input should be a valid integer"),
        ("RESYNC_SECONDS", "-1", "RESYNC_SECONDS='-1': Input should be greater than 0"),
        ("KAFKA_AUTH_TYPE", "kerberos", "KAFKA_AUTH_TYPE='kerberos': Input should be"),
        ("ENDPOINT_ROUTING", "istio", "ENDPOINT_ROUTING='istio': ENDPOINT_ROUTING must be ambassador"),
    ],
)
def test_operator_refuses_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, line: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        OperatorOptions.from_env()
    assert str(caught.value).startswith(line)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"KAFKA_TLS": "maybe"}, "KAFKA_TLS='maybe': Input should be a valid boolean"),
        ({"KAFKA_AUTH_TYPE": "kerberos"}, "KAFKA_AUTH_TYPE='kerberos': Input should be"),
        ({"KAFKA_AUTH_TYPE": "plain"}, "auth_type plain needs username and password"),
        ({"KAFKA_BROKERS": ""}, "KAFKA_BROKERS is not set"),
    ],
)
def test_kafka_variables_are_refused_naming_the_variable(env: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        KafkaSettings.from_env({"KAFKA_BROKERS": "k:9092", **env})
    assert line in str(caught.value)
    assert "\n" not in str(caught.value)


def _runner_config_file(tmp_path: Path) -> Path:
    topology = _topology()
    node = topology.algo("demo/wordcount:1[1]")
    assert node is not None
    path = tmp_path / "runner.json"
    path.write_text(json.dumps(runner_config(topology, node).model_dump(mode="json", by_alias=True)))
    return path


@pytest.mark.parametrize(
    ("command", "env", "line"),
    [
        ("runner", {"ALGORUN_RUNNER_CONCURRENCY": "many"}, "error: ALGORUN_RUNNER_CONCURRENCY='many': "),
        ("runner", {"ALGORUN_RUNNER_EXEC_MODE": "batch"}, "error: ALGORUN_RUNNER_EXEC_MODE='batch': use per-message"),
        ("replay", {"ALGORUN_RUNNER_SESSION_TIMEOUT_MS": "soon"}, "error: ALGORUN_RUNNER_SESSION_TIMEOUT_MS='soon': "),
        ("endpoint", {"ALGORUN_ENDPOINT_MAX_IN_FLIGHT": "-1"}, "error: ALGORUN_ENDPOINT_MAX_IN_FLIGHT='-1': "),
        ("hook", {"ALGORUN_HOOK_TIMEOUT": "soon"}, "error: ALGORUN_HOOK_TIMEOUT='soon': "),
    ],
)
def test_commands_exit_2_with_one_line(tmp_path: Path, command: str, env: dict[str, str], line: str) -> None:
    config = _runner_config_file(tmp_path) if command in ("runner", "replay") else EXAMPLE
    result = CliRunner().invoke(app, [command, "--config", str(config)], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(line), result.stderr
    assert result.stderr.count("\n") == 1


def test_the_runner_option_is_named_when_it_gave_the_value(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["runner", "--config", str(_runner_config_file(tmp_path)), "--concurrency", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --concurrency=0: Input should be greater than or equal to 1")


def test_the_runner_workers_option_is_a_setting_like_the_others(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["runner", "--config", str(_runner_config_file(tmp_path)), "--workers", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --workers=0: Input should be greater than or equal to 1")


def test_the_operator_exits_2_naming_the_variable() -> None:
    result = CliRunner().invoke(app, ["render", str(EXAMPLE)], env={"METRICS_PORT": "http"})
    assert result.exit_code == 2, result.output
    assert "METRICS_PORT='http'" in result.stderr
