"""Pure planning of executor calls: argv/env/files for executables, query parameters for http, frames, options."""

from __future__ import annotations

from pathlib import Path

import pytest

from algorun.runner.config import RunnerOptions
from algorun.runner.delegated import delegated_env
from algorun.runner.executors.executable import plan_invocation, safe_name
from algorun.runner.executors.http import query_params
from algorun.runner.executors.streaming import encode_request, encode_response
from algorun.runner.model import AlgoFailure, Part, Request
from tests.support.runner_configs import names, runner_config


def req(config, *parts: bytes, names_: tuple[str | None, ...] = ()) -> Request:  # type: ignore[no-untyped-def]
    fn = list(names_) + [None] * len(parts)
    return Request(
        "t" * 32, config.inputs[0], [Part(p, None, fn[i]) for i, p in enumerate(parts)], config.parameters, "a=1"
    )


def test_file_parameter_repeats_the_parameter_and_keeps_distinct_names() -> None:
    config = runner_config(
        names(),
        executor="Executable",
        entrypoint="algo --mode 'two words'",
        input_type="FileParameter",
        input_extra={"fileParameter": {"parameter": "-i"}},
        outputs=[{"name": "o", "outputDeliveryType": "FolderParameter", "parameter": "-o", "topic": "x"}],
        parameters=[{"name": "--k", "value": "v"}, {"name": "--flag"}],
    )
    inv = plan_invocation(
        config, req(config, b"1", b"2", names_=("same.txt", "same.txt")), Path("/run"), {"PATH": "/bin"}
    )
    assert inv.argv == [
        "algo", "--mode", "two words", "--k", "v", "--flag", "-o", "/run/output/o",
        "-i", "/run/input/same.txt", "-i", "/run/input/1-same.txt",
    ]  # fmt: skip
    assert inv.env["PATH"] == "/bin"  # inherited
    assert inv.env["ENDPOINT_PARAMS"] == "a=1"
    assert inv.files == {Path("/run/input/same.txt"): b"1", Path("/run/input/1-same.txt"): b"2"}


def test_array_parameter_with_a_delimiter_is_one_argument() -> None:
    config = runner_config(
        names(),
        executor="Executable",
        entrypoint="algo",
        input_type="FileArrayParameter",
        input_extra={"fileParameter": {"parameter": "--files", "delimiter": ";"}},
        outputs=[],
    )
    inv = plan_invocation(config, req(config, b"1", b"2"), Path("/r"), {})
    assert inv.argv == ["algo", "--files", f"/r/input/{'t' * 32}-0;/r/input/{'t' * 32}-1"]


def test_environment_variable_input_limits() -> None:
    config = runner_config(
        names(), executor="Executable", entrypoint="algo", input_type="EnvironmentVariable", outputs=[]
    )
    inv = plan_invocation(config, req(config, b"hello"), Path("/r"), {})
    assert inv.env["IN"] == "hello"  # named after the input when no variable is given
    with pytest.raises(AlgoFailure, match="do not fit"):
        plan_invocation(config, req(config, b"x" * 200_000), Path("/r"), {})


def test_safe_names() -> None:
    assert safe_name("../../etc/passwd", "f") == "passwd"
    assert safe_name("..", "f") == "f"
    assert safe_name(None, "f") == "f"
    assert safe_name("a b/c d.txt", "f") == "c_d.txt"


def test_http_query_parameters_override_case_insensitively_and_keep_extras() -> None:
    assert query_params([("Mode", "fast"), ("n", "1")], "mode=slow&extra=x") == [
        ("mode", "slow"),
        ("n", "1"),
        ("extra", "x"),
    ]
    assert query_params([("a", "1")], None) == [("a", "1")]


def test_stream_frames() -> None:
    assert encode_request(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_response(1, b"e") == b"\x01\x00\x00\x00\x01e"


def test_options_from_environment_and_overrides() -> None:
    o = RunnerOptions.from_env(
        {"ALGORUN_RUNNER_CONCURRENCY": "8", "ALGORUN_RUNNER_KEY_CONCURRENCY": "true", "ALGORUN_BUS": "local:///x"},
        exec_mode="streaming",
        concurrency=None,
    )
    assert (o.concurrency, o.key_concurrency, o.bus, o.exec_mode) == (8, True, "local:///x", "streaming")
    with pytest.raises(ValueError, match="per-message or streaming"):
        RunnerOptions.from_env({}, exec_mode="batch")
    with pytest.raises(ValueError, match="ALGORUN_RUNNER_CONCURRENCY"):
        RunnerOptions.from_env({"ALGORUN_RUNNER_CONCURRENCY": "many"})


def test_delegated_environment() -> None:
    n = names()
    env = delegated_env(runner_config(n, executor="Delegated"), "b:9092")
    assert env["KAFKA_BROKERS"] == "b:9092"
    assert env["KAFKA_INPUT_TOPIC_IN"] == n["input"]
    assert env["KAFKA_OUTPUT_TOPIC_OUT"] == n["output"]
    assert env["ALGORUN_DEAD_LETTER_TOPIC"] == n["dlq"]
