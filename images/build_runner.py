"""Build the self-contained algo-runner: the `algorun` command frozen with PyInstaller (onedir), no Python needed.

    python images/build_runner.py --out /opt/algorun/algo-runner

Run it with the interpreter that has algorun and its runtime dependencies installed (requirements/runtime.lock
plus `pip install --no-deps .`) and PyInstaller (see images/README.md for the pin). It writes:

    OUT/bin/algo-runner        the executable (the algorun CLI; `algo-runner runner ...` runs the runner)
    OUT/bin/_internal/         the frozen interpreter, modules and shared libraries it loads
    OUT/BUILD-INFO.json        versions and the glibc of the build machine (the oldest glibc it runs on)

An algo of type `Executable` runs in the user's image; the operator's init container copies OUT into an
emptyDir mounted at /algo-runner, and the algo container runs /algo-runner/bin/algo-runner. The build links
against the build machine's glibc, so it runs on any glibc Linux at least that new (not on musl/Alpine).

Only the standard library is imported here at module level, so the script runs under any Python 3.11.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from runner_entry import BUNDLE_MODULES  # noqa: E402  (the list --bundle-check verifies)

ENTRY = HERE / "runner_entry.py"
NAME = "algo-runner"

# Packages of algorun the runner needs at run time (imported lazily by the CLI, so collected explicitly).
COLLECT = ("algorun.api", "algorun.bus", "algorun.storage", "algorun.runner", "algorun.cli")
# Never bundled: the operator side (kopf, Kubernetes client), local supervision, developer tools.
EXCLUDE = (
    "algorun.operator",
    "algorun.local",
    "kopf",
    "lightkube",
    "tkinter",
    "pytest",
    "hypothesis",
    "mypy",
    "IPython",
    "grpc_tools",
)


def pyinstaller_args(dist: Path, work: Path) -> list[str]:
    args = [
        str(ENTRY),
        "--onedir",
        "--name",
        NAME,
        "--distpath",
        str(dist),
        "--workpath",
        str(work / "build"),
        "--specpath",
        str(work),
        "--noconfirm",
        "--noupx",
        "--strip",
        "--log-level",
        "WARN",
        "--collect-data",
        "algorun",
    ]
    for package in COLLECT:
        if importlib.util.find_spec(package) is not None:
            args += ["--collect-submodules", package]
    for module in BUNDLE_MODULES:
        args += ["--hidden-import", module]
    for module in EXCLUDE:
        args += ["--exclude-module", module]
    return args


def glibc_version() -> str:
    name, version = platform.libc_ver()
    return version if name == "glibc" else f"{name or 'unknown'} {version}".strip()


def build(out: Path, work: Path | None = None) -> Path:
    """Build into `out` (replaced atomically when complete); return the executable's path."""
    if importlib.util.find_spec("PyInstaller") is None:
        raise SystemExit(f"PyInstaller is not installed for {sys.executable}; see images/README.md for the pin")
    if importlib.util.find_spec("algorun") is None:
        raise SystemExit(f"algorun is not installed for {sys.executable}")
    import PyInstaller  # type: ignore[import-untyped]

    import algorun

    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="algo-runner-build-") as tmp:
        scratch = Path(work).resolve() if work else Path(tmp)
        dist = scratch / "dist"
        subprocess.run(
            [sys.executable, "-m", "PyInstaller", *pyinstaller_args(dist, scratch)],
            check=True,
            # A clean environment for the analysis: no PYTHONPATH leaking modules of the caller into the bundle.
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        )
        staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            (dist / NAME).rename(staged / "bin")
            info = {
                "algorun": algorun.__version__,
                "python": platform.python_version(),
                "pyinstaller": PyInstaller.__version__,
                "machine": platform.machine(),
                "glibc": glibc_version(),
                "entry": f"bin/{NAME}",
            }
            (staged / "BUILD-INFO.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            if out.exists():
                shutil.rmtree(out)
            staged.rename(out)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    return out / "bin" / NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the algo-runner root, e.g. /opt/algorun/algo-runner")
    parser.add_argument("--work", type=Path, help="PyInstaller work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    exe = build(args.out, args.work)
    print(exe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
