"""Every runner option read from its ALGORUN_RUNNER_* variable has its declared type: the parser follows the
field's annotation, so a new option needs no second declaration to be parsed."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from algorun.runner.config import RunnerOptions

SAMPLES: dict[object, tuple[str, object]] = {
    int: ("7", 7),
    float: ("2.5", 2.5),
    bool: ("true", True),
    Path: ("/srv/algo", Path("/srv/algo")),
    str: ("text", "text"),
}
LITERALS = {"exec_mode": "streaming", "grpc_mode": "stream", "stderr_policy": "fail"}


def declared(name: str) -> object:
    kind = typing.get_type_hints(RunnerOptions)[name]
    if typing.get_origin(kind) is typing.Literal:
        return typing.Literal
    kinds = [a for a in typing.get_args(kind) if a is not type(None)]
    return kinds[0] if kinds else kind


@pytest.mark.parametrize("name", list(RunnerOptions.model_fields))
def test_each_option_is_parsed_as_its_declared_type(name: str) -> None:
    kind = declared(name)
    raw, expected = (LITERALS[name], LITERALS[name]) if kind is typing.Literal else SAMPLES[kind]
    options = RunnerOptions.from_env({f"ALGORUN_RUNNER_{name.upper()}": raw})
    assert getattr(options, name) == expected


def test_a_bad_number_names_its_variable() -> None:
    with pytest.raises(ValueError, match="ALGORUN_RUNNER_GRACE_SECONDS='soon'"):
        RunnerOptions.from_env({"ALGORUN_RUNNER_GRACE_SECONDS": "soon"})
