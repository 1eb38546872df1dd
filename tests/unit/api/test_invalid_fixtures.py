"""Every file in tests/fixtures/invalid fails validation with exactly the messages its `# expect:` lines give
(`line:column: path: message`), and the CLI exits 1 for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from algorun.api import check_files
from algorun.cli.main import app
from tests.support.paths import FIXTURES

INVALID = FIXTURES / "invalid"
CASES = sorted(INVALID.glob("*.yaml"))


def expected_messages(path: Path) -> list[str]:
    return [
        line.removeprefix("# expect: ").rstrip()
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


def test_there_are_fixtures() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_fixture_fails_with_its_message(path: Path) -> None:
    expected = expected_messages(path)
    assert expected, f"{path.name} has no '# expect:' line"
    report = check_files([path])
    assert not report.ok
    got = [p.located().removeprefix(f"{path}:") for p in report.errors]
    assert got == expected


@pytest.mark.parametrize("path", CASES[:5], ids=lambda p: p.stem)
def test_cli_exits_1_with_path_qualified_messages(path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    for message in expected_messages(path):
        assert message in " ".join(result.output.split()) or message.split(": ", 1)[1] in result.output
