"""The runner as a real process (`algorun runner`), for kill -9, SIGTERM and health tests.

The runner picks its own health port (`--health-port 0`) and logs it: a port chosen by the test and bound later
by the runner can be taken in between by any other process on a busy machine (the runner then exits with
"address already in use", and a test waiting for its outputs only times out).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from algorun.api.configs import RunnerConfig
from tests.support.paths import REPO
from tests.support.procs import die_with_parent

_PORT_LINE = re.compile(r"started; health on :(\d+)")


ALGORUN = (sys.executable, "-m", "algorun.cli.main")
"""The `algorun` command of this checkout's interpreter: the program a runner process runs unless told otherwise."""


class RunnerProcess:
    """`PROGRAM runner --config ... --bus ...` in its own session, logging to a file in `workdir`.

    `program` is `algorun` by default; the self-contained build (`bin/algo-runner`) is the other program with a
    `runner` command. The environment is this one plus `env`, or only `env` when `inherit_env` is False (as a pod
    whose image has no Python would run it)."""

    def __init__(
        self,
        config: RunnerConfig,
        bus_url: str,
        workdir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        program: Sequence[str] = ALGORUN,
        inherit_env: bool = True,
    ) -> None:
        self._port: int | None = None
        path = workdir / f"runner-{config.consumer_group}.json"
        path.write_text(config.model_dump_json(by_alias=True))
        self.log_path = workdir / f"runner-{uuid.uuid4().hex[:8]}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [
                *program,
                "runner",
                "--config",
                str(path),
                "--bus",
                bus_url,
                "--health-port",
                "0",
                "--grace",
                "10",
                *args,
            ],
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **(os.environ if inherit_env else {}),
                "ALGORUN_RUNNER_COMMIT_INTERVAL_SECONDS": "0.05",
                "ALGORUN_RUNNER_SESSION_TIMEOUT_MS": "6000",
                **(env or {}),
            },
            start_new_session=True,  # kill9() and stop() signal the whole group
            # A pytest run killed mid-test (CI cancelled, Ctrl-C twice) must not leave a runner consuming behind it.
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )

    @property
    def port(self) -> int:
        """The health port the runner logged; ConnectionRefusedError (an OSError) until it has one."""
        if self._port is None:
            found = _PORT_LINE.search(self.log_path.read_text(errors="replace"))
            if found is None:
                raise ConnectionRefusedError(f"the runner has not opened its health port yet ({self.log_path})")
            self._port = int(found.group(1))
        return self._port

    def exited(self) -> int | None:
        """The exit code once the process ended, else None."""
        return self.popen.poll()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def ready(self) -> bool:
        with contextlib.suppress(OSError):
            return self.get("/ready")[0] == 200
        return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.popen.poll() is not None:
                raise AssertionError(f"runner exited with {self.popen.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"runner not ready within {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def readiness(self) -> dict[str, Any]:
        return json.loads(self.get("/ready")[1])  # type: ignore[no-any-return]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill9(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        self._log.close()
