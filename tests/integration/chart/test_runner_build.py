"""The self-contained algo-runner build (images/build_runner.py) works outside any virtualenv.

The build (PyInstaller, about a minute here) is cached under $ALGORUN_TESTBIN/algo-runner/<key>, the key
being a digest of the runtime lock file, the build inputs in images/, algorun's own modules (the build freezes
them: a cache keyed without them would test yesterday's runner) and the PyInstaller and Python versions, so a
second run of the same tree builds nothing. It runs with `env -i`: no PATH, no virtualenv, no PYTHONPATH or
PYTHONHOME.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from algorun.bus import open_bus
from tests.support import testbin
from tests.support.paths import IMAGES, REPO, SRC
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import create_topics, send
from tests.support.runner_process import RunnerProcess
from tests.support.waiting import wait_until

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
    for path in (*INPUTS, *sorted(SRC.rglob("*.py"))):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
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
            _prune(cache, keep=out.parent)
    return out


def _prune(cache: Path, *, keep: Path) -> None:
    """Builds of other keys older than a day (each is ~110 MB, and every change to algorun's modules makes a new
    key); younger ones may belong to another checkout's run in progress."""
    for old in cache.iterdir():
        if old.is_dir() and old != keep and time.time() - old.stat().st_mtime > 86400:
            shutil.rmtree(old, ignore_errors=True)


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


async def test_runner_build_runs_two_workers_on_the_local_log(runner_build: Path, tmp_path: Path) -> None:
    """`workers: 2` under the self-contained build: the supervisor starts its workers with its own binary (no
    Python on the machine, only PATH set, as in an algo image), each processes its share through an `Executable`
    algo, and SIGTERM drains the pod with 0."""
    total = 200
    n = names("frozen-workers")
    config = runner_config(n, executor="Executable", entrypoint="tests/algos/exec_upper.sh")
    config = config.model_copy(update={"runtime": config.runtime.model_copy(update={"workers": 2})})
    bus = open_bus(f"local://{tmp_path}/log.db")
    runner: RunnerProcess | None = None
    try:
        await create_topics(bus, config, partitions=2)
        runner = RunnerProcess(
            config,
            f"local://{tmp_path}/log.db",
            tmp_path,
            program=(str(runner_build / "bin" / "algo-runner"),),
            env={"PATH": os.defpath},
            inherit_env=False,
        )
        await asyncio.to_thread(runner.wait_ready, 60)
        await send(bus, n["input"], [f"m{i:04d}".encode() for i in range(total)])
        consumer = bus.consumer(None, [n["output"]])
        seen: set[bytes] = set()

        async def read() -> bool:
            assert runner is not None and runner.exited() is None, runner.log() if runner else ""
            seen.update(m.value for m in await consumer.getmany(max_messages=1000, max_wait=0.2))
            return len(seen) == total

        try:
            await wait_until(read, 60, f"{total} outputs of the frozen runner's workers")
        finally:
            await consumer.close()
        assert seen == {f"M{i:04d}".encode() for i in range(total)}
        assert len(set(re.findall(r"worker (\d+) started", runner.log_path.read_text()))) == 2, runner.log()
        assert await asyncio.to_thread(runner.terminate, 40) == 0, runner.log()
    finally:
        if runner is not None:
            runner.stop()
        await bus.close()
