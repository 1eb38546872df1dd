"""The package table of DESIGN.md, checked: each package of `src/algorun` imports only the packages below it.

Every `import algorun.X` and `from algorun.X import ...` counts, lazy imports inside functions too (they still
make X a dependency). The shared base modules (`telemetry`, `breaker`, `settings`) sit under every package. `cli`
may import everything; `local` serves the console, so `console` sits below `local`.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "algorun"
BASE = {"telemetry", "breaker", "settings"}
MAY_IMPORT: dict[str, set[str]] = {
    "api": set(),
    "bus": {"api"},
    "storage": {"api"},
    "webhook": {"api"},
    "runner": {"api", "bus", "storage"},
    "endpoint": {"api", "bus", "storage"},
    "hooks": {"api", "bus", "webhook"},
    "operator": {"api", "webhook"},
    "console": {"api", "bus", "runner"},
    "local": {"api", "bus", "storage", "runner", "endpoint", "hooks", "operator", "console"},
}
TOP_LEVEL = {"cli"}  # may import every package


def _imports(path: Path) -> set[str]:
    """The algorun packages (first name under `algorun.`) that `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found.update(name.split(".")[1] for name in names if name.startswith("algorun."))
    return found


def test_every_package_is_in_the_table() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(MAY_IMPORT) | TOP_LEVEL | BASE, packages - set(MAY_IMPORT) - TOP_LEVEL - BASE


def test_packages_import_only_what_they_may() -> None:
    wrong = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((SRC / package).rglob("*.py")):
            for target in sorted(_imports(path) - allowed - BASE - {package}):
                wrong.append(f"{path.relative_to(SRC.parent)} imports algorun.{target}")
    assert not wrong, "imports across the package table:\n" + "\n".join(wrong)


def test_the_base_modules_import_no_package() -> None:
    for name in sorted(BASE):
        path = SRC / f"{name}.py" if (SRC / f"{name}.py").exists() else SRC / name
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            assert _imports(file) <= BASE, f"{file.relative_to(SRC.parent)} imports {_imports(file) - BASE}"
