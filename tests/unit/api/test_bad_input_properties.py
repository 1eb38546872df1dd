"""Property-based bad input: mutated specs and arbitrary text never raise, and every problem says where it is."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from algorun.api import check_text
from algorun.cli.main import app
from tests.support.paths import EXAMPLES

BASES = [
    yaml.safe_load((EXAMPLES / name / "pipeline.yaml").read_text())
    for name in ("text-transform", "fan-out-fan-in", "retry-dead-letter")
]

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.just("x" * 300),
    st.just("{deploymentowner}/../\x00"),
)


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(paths_of(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(paths_of(value, (*prefix, i)))
    return found


@st.composite
def mutated_spec(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = paths_of(doc)
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = draw(st.sampled_from(["delete", "replace", "rename", "duplicate"]))
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(junk)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(last)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return doc


def assert_problems_are_located(text: str) -> bool:
    report = check_text(text, file="mutated.yaml")
    for problem in report.problems:
        assert problem.message
        assert problem.path or problem.line is not None, problem
        assert problem.file == "mutated.yaml"
    return report.ok


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_spec())
def test_mutated_specs_never_raise_and_problems_have_paths(doc: Any) -> None:
    assert_problems_are_located(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    assert_problems_are_located(text)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(mutated_spec())
def test_cli_exits_0_or_1_never_a_traceback(tmp_path_factory: Any, doc: Any) -> None:
    path = tmp_path_factory.mktemp("m") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 1)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if result.exit_code == 1:
        # every problem line is located: "<file>:<line>:<column>: <path>: <message>" (position when known)
        assert re.search(rf"{re.escape(str(path))}(:\d+:\d+)?: \S", result.output), result.output
