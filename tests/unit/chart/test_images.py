"""The image definition (images/Dockerfile) agrees with what the operator and the chart expect of it.

No Docker engine is available, so these read the Dockerfile; the self-contained runner build itself is built
and run by tests/integration/chart/test_runner_build.py.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.chart_files import values
from tests.support.paths import IMAGES, REPO

DOCKERFILE = (IMAGES / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, IMAGES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [args for word, args in _final_stage() if word == "USER"]

    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_the_image_entry_point_is_the_algorun_command() -> None:
    final = dict(_final_stage())

    assert final["ENTRYPOINT"] == '["algorun"]'
    assert "/opt/algorun/venv/bin" in final["ENV"]


def test_the_image_holds_the_runner_build_where_the_operator_copies_it_from() -> None:
    from algorun.operator.render import algo

    copies = [args for word, args in _final_stage() if word == "COPY"]
    source = algo.RUNNER_BUILD_SOURCE.rstrip("/")

    assert f"--from=runner-build {source} {source}" in copies
    assert f"{algo.RUNNER_BUILD_DIR}/bin/{_load('build_runner').NAME}" == algo.RUNNER_BINARY


def test_base_images_are_pinned_to_a_python_311_tag() -> None:
    args = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", DOCKERFILE, flags=re.M))

    assert args, "no base image ARGs"
    for name, image in args.items():
        referenced = re.fullmatch(r"\$\{(\w+_IMAGE)\}", image)
        if referenced:  # one base ARG defaults to another
            image = args[referenced.group(1)]
        assert re.fullmatch(r"python:3\.11-slim-\w+", image), (name, image)


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    ignore = [line.strip() for line in (IMAGES / "Dockerfile.dockerignore").read_text().splitlines()]
    patterns = [p for p in ignore if p and not p.startswith("#")]
    copied = [args.split()[:-1] for word, args in _instructions() if word == "COPY" and not args.startswith("--from")]
    sources = [s for group in copied for s in group]

    assert sources
    for src in sources:
        assert (REPO / src).exists(), src
        included = False
        for pattern in patterns:  # last match wins, as in .dockerignore
            negated = pattern.startswith("!")
            if fnmatch.fnmatch(src.rstrip("/"), pattern.lstrip("!").rstrip("/")):
                included = negated
        assert included, f"{src} is excluded from the build context by images/Dockerfile.dockerignore"


def test_runner_build_tools_are_pinned() -> None:
    lines = [
        line.strip()
        for line in (IMAGES / "runner-build.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert any(line.startswith("pyinstaller==") for line in lines)
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9.]*", line) for line in lines), lines


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["algo-runner", "--config", "/c.json"], ["algo-runner", "runner", "--config", "/c.json"]),
        (["/algo-runner/bin/algo-runner", "runner", "--config", "x"], ["algo-runner", "runner", "--config", "x"]),
        (["algo-runner", "--version"], ["algo-runner", "--version"]),
        (["algo-runner"], ["algo-runner", "runner"]),
    ],
)
def test_the_runner_binary_is_algorun_runner(argv: list[str], expected: list[str]) -> None:
    assert _load("runner_entry").runner_argv(argv) == expected


def test_runner_build_collects_the_runner_and_leaves_out_the_operator() -> None:
    build = _load("build_runner")

    args = build.pyinstaller_args(Path("/d"), Path("/w"))

    assert args[args.index("--name") + 1] == "algo-runner"
    assert "--onedir" in args
    excluded = {args[i + 1] for i, a in enumerate(args) if a == "--exclude-module"}
    assert {"kopf", "lightkube", "algorun.operator"} <= excluded
    hidden = {args[i + 1] for i, a in enumerate(args) if a == "--hidden-import"}
    assert {"confluent_kafka", "aiohttp", "grpc"} <= hidden


def test_chart_image_values_match_the_single_image() -> None:
    v = values()

    assert {v[k]["repository"] for k in ("image", "algoRunnerImage", "endpointImage", "eventHookImage")} == {
        "algorun/algorun"
    }


def test_example_algo_files_do_not_collide_in_the_examples_image() -> None:
    """images/examples.Dockerfile copies every example's algos/ into one folder: two files of one name would
    silently replace each other."""
    names = [p.name for p in (REPO / "examples").glob("*/algos/*") if p.is_file() and p.suffix != ".pyc"]

    assert names
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
