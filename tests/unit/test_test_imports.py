"""Test helpers have one home, checked: no test, conftest, helper or benchmark imports a test module.

What the suite shares lives in `tests/support` (helpers, fakes of the bus interface, fixtures as pytest plugins
registered by the top `tests/conftest.py`), so a test module can be moved, renamed or deleted without breaking
another one, and a newcomer finds every helper in one folder. The one other importable folder is `tests/algos`:
the algo programs the runner runs (the python executor's entrypoints, the executable scripts, the HTTP and gRPC
algos that tests also start in their own event loop); they are what is under test's input, not helpers.

Every import counts: `import tests.X`, `from tests.X import ...`, `from tests import X`, relative imports, imports
inside functions, and the modules `pytest_plugins` names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import REPO, TESTS

BENCHMARKS = REPO / "benchmarks"
IMPORTABLE = ("tests.support", "tests.algos")
"""The test folders other modules may import from: the helpers' home, and the algo programs the runner runs."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    """The module an `ImportFrom` names, relative ones resolved against the importing module's package."""
    if node.level == 0:
        return node.module or ""
    package = importer.split(".")[: -node.level]
    return ".".join([*package, node.module] if node.module else package)


def _plugins(node: ast.Assign) -> list[str]:
    """The modules named by a `pytest_plugins = [...]` (or a single string) assignment."""
    if not any(isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets):
        return []
    values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
    return [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]


def imported_modules(source: str, importer: str) -> Iterator[tuple[int, str]]:
    """(line, module) for each module `source` imports (`importer` is its own dotted name)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(importer, node)
            yield node.lineno, module
            if module == "tests" or node.module is None:  # `from tests import integration`: names are modules
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Assign):
            for plugin in _plugins(node):
                yield node.lineno, plugin


def is_test_module(module: str) -> bool:
    """Whether `module` is a module of the test suite outside the folders others may import from."""
    inside = module.startswith("tests.")
    return inside and not any(module == p or module.startswith(f"{p}.") for p in IMPORTABLE)


def offences(source: str, importer: str) -> list[str]:
    """The test modules outside the importable folders that `source` (the module `importer`) imports."""
    return [module for _, module in imported_modules(source, importer) if is_test_module(module)]


def _python_files() -> Iterator[Path]:
    yield from sorted(TESTS.rglob("*.py"))
    yield from sorted(BENCHMARKS.rglob("*.py"))


def test_no_test_or_benchmark_imports_a_test_module() -> None:
    found = []
    for path in _python_files():
        importer = _module_name(path)
        for line, module in imported_modules(path.read_text(), importer):
            if is_test_module(module):
                found.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert found == [], "move what they import into tests/support (see its README):\n" + "\n".join(found)


def test_every_form_of_import_is_seen() -> None:
    """The check above can fail: each way of importing a test module is reported, and the allowed ones are not."""
    importer = "tests.unit.x.test_y"
    cases = {
        "from tests.integration.runner.harness import REPO": ["tests.integration.runner.harness"],
        "import tests.unit.chart.helpers": ["tests.unit.chart.helpers"],
        "from tests import integration": ["tests.integration"],
        "from .test_z import helper": ["tests.unit.x.test_z"],
        "from .. import conftest": ["tests.unit", "tests.unit.conftest"],
        "def f():\n    from tests.browser.conftest import page": ["tests.browser.conftest"],
        'pytest_plugins = ["tests.integration.conftest"]': ["tests.integration.conftest"],
        "from tests.support.fakes import FakeProducer": [],
        "from tests.algos.http_algo import start_http_algo": [],
        'pytest_plugins = ["tests.support.testbed_fixtures"]': [],
        "import algorun.runner": [],
    }
    for source, expected in cases.items():
        assert offences(source, importer) == expected, source
