"""The self-contained algo-runner build (images/build_runner.py) works outside any virtualenv.

The build (PyInstaller, ~15 s) is cached under $ALGORUN_TESTBIN/algo-runner/<key>, the key being a digest of
the runtime lock file, the build inputs in images/ and the PyInstaller and Python versions, so a second run
builds nothing. It runs with `env -i`: no PATH, no virtualenv, no PYTHONPATH or PYTHONHOME.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import testbin
from tests.support.paths import IMAGES, REPO

pytestmark = pytest.mark.integration

INPUTS = (
    REPO / "requirements" / "runtime.lock",
    IMAGES / "build_runner.py",
    IMAGES / "runner_entry.py",
    IMAGES / "runner-build.txt",
)


def _key() -> str:
    import PyInstaller

    digest = hashlib.sha256(f"{PyInstaller.__version__}\0{platform.python_version()}\0".encode())
    for path in INPUTS:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def runner_build() -> Path:
    """The runner build's root directory (…/algo-runner with bin/algo-runner), built once per input key."""
    if importlib.util.find_spec("PyInstaller") is None:
        reason = f"PyInstaller is not installed in {sys.prefix}; install images/runner-build.txt"
        if testbin.in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    cache = testbin.root() / "algo-runner"
    out = cache / _key() / "algo-runner"
    with _locked(cache / "build.lock"):
        if not (out / "BUILD-INFO.json").exists():
            log = cache / "build.log"
            with open(log, "wb") as handle:
                proc = subprocess.run(
                    [sys.executable, str(IMAGES / "build_runner.py"), "--out", str(out)],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            assert proc.returncode == 0, f"the runner build failed; see {log}:\n{log.read_text()[-3000:]}"
    return out


def _run_clean(*argv: str) -> subprocess.CompletedProcess[str]:
    env = shutil.which("env")
    assert env is not None
    return subprocess.run([env, "-i", *argv], capture_output=True, text=True, timeout=60, check=False)


def test_runner_build_prints_the_version_with_an_empty_environment(runner_build: Path) -> None:
    import algorun

    proc = _run_clean(str(runner_build / "bin" / "algo-runner"), "--version")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"algorun {algorun.__version__}"


def test_runner_build_bundles_every_data_plane_dependency(runner_build: Path) -> None:
    proc = _run_clean(str(runner_build / "bin" / "algo-runner"), "--bundle-check")

    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["failed"] == {}, report
    assert report["frozen"] is True
    assert report["modules"]["librdkafka"]


def test_runner_build_is_relocatable_like_the_init_container_copy(runner_build: Path, tmp_path: Path) -> None:
    """The operator's init container copies the build into an emptyDir at /algo-runner (`cp -R src/. dst/`)."""
    target = tmp_path / "algo-runner"
    target.mkdir()
    subprocess.run(["cp", "-R", f"{runner_build}/.", f"{target}/"], check=True)

    proc = _run_clean(str(target / "bin" / "algo-runner"), "--version")

    assert proc.returncode == 0, proc.stderr
    info = json.loads((target / "BUILD-INFO.json").read_text())
    assert info["entry"] == "bin/algo-runner"
    assert not (target / "bin" / "_internal" / "kopf").exists(), "the operator's dependencies were bundled"
