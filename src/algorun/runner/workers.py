"""Several runner processes for one algo instance (`workers` > 1): a supervisor and its workers.

A runner process is held to one core by the GIL; `workers` N runs N full runners in one pod (or one `algorun run`
instance), each with its own bus connection and executor and each a member of the instance's consumer group, so
the broker spreads the partitions over them. The process started as `algorun runner` becomes the supervisor:

- each worker is `algorun runner` again, with `workers=1`, every resolved option passed as an
  `ALGORUN_RUNNER_*` variable (so a worker runs exactly what the supervisor was told), the config as JSON in
  `ALGO_RUNNER_CONFIG`, its own instance name (`{instance}-w{i}`: the transactional id of exactly-once and the
  static group membership id must differ per worker, or the workers would fence each other), and its health
  server on a loopback port it picks itself and reports through a file;
- the supervisor serves the pod's one /health, /ready and /metrics (`pod_endpoint`);
- SIGTERM/SIGINT are forwarded, so every worker drains within its own grace period;
- a worker that ends without being asked to ends the pod: the others are stopped (drained) and the supervisor
  exits with that worker's code, so the kubelet restarts the pod: a pod with a dead worker holds partitions
  nobody consumes and must not look healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algorun.api.configs import RunnerConfig
from algorun.runner.config import RunnerOptions
from algorun.runner.pod_endpoint import PodEndpoint

log = logging.getLogger("algorun.runner.workers")

MAX_WORKERS = 64
"""The pipeline model's limit (`AlgoDeployment.workers`), checked here too for the CLI and the environment."""
PORT_FILE_ENV = "ALGORUN_RUNNER_WORKER_PORT_FILE"
"""Where a worker writes its health port once it listens (set by the supervisor only)."""
SUPERVISOR_ENV = "ALGORUN_RUNNER_WORKER_OF"
"""The supervisor's pid, in a worker's environment: the worker ends (drains) if its supervisor dies."""
KILL_MARGIN_S = 5.0
"""Past a worker's grace period, the time to exit before it is killed."""
_OPTION_PREFIX = "ALGORUN_RUNNER_"
_PR_SET_PDEATHSIG = 1


def worker_argv() -> list[str]:
    """The command of a worker: this same program's `runner` command (the frozen runner build is the CLI itself)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "runner"]
    return [sys.executable, "-m", "algorun.cli.main", "runner"]


def option_values(options: RunnerOptions) -> dict[str, Any]:
    """Every option by field name (a dataclass or a pydantic model of options)."""
    if dataclasses.is_dataclass(options):
        return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    dump = getattr(options, "model_dump")  # noqa: B009 - pydantic-settings options
    return dict(dump())


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def worker_instance(instance: str, index: int) -> str:
    """A worker's instance name: distinct per worker and stable across restarts of the same pod."""
    return f"{instance}-w{index}"


def worker_env(
    base: Mapping[str, str], config: RunnerConfig, options: RunnerOptions, index: int, port_file: Path
) -> dict[str, str]:
    """The environment of worker `index`: `base` with every option of `options` as `ALGORUN_RUNNER_*` (an unset
    option is removed, so nothing inherited overrides it), one worker, a loopback health server on a port of its
    choosing, its own instance name and static membership id."""
    env = dict(base)
    for name, value in option_values(options).items():
        key = _OPTION_PREFIX + name.upper()
        if value is None:
            env.pop(key, None)
        else:
            env[key] = _env_text(value)
    env.pop("ALGORUN_BUS", None)  # options.bus already holds it
    env.update(
        {
            "ALGO_RUNNER_CONFIG": config.model_dump_json(by_alias=True),
            _OPTION_PREFIX + "WORKERS": "1",
            _OPTION_PREFIX + "HEALTH_HOST": "127.0.0.1",
            _OPTION_PREFIX + "HEALTH_PORT": "0",
            _OPTION_PREFIX + "INSTANCE": worker_instance(options.instance, index),
            PORT_FILE_ENV: str(port_file),
            SUPERVISOR_ENV: str(os.getpid()),
        }
    )
    group_instance = env.get(_OPTION_PREFIX + "GROUP_INSTANCE_ID")
    if group_instance:
        env[_OPTION_PREFIX + "GROUP_INSTANCE_ID"] = worker_instance(group_instance, index)
    return env


def exit_code(returncode: int) -> int:
    """A process's exit status as a shell reports it: a death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def pod_exit_code(first_end: int | None, codes: list[int]) -> int:
    """The supervisor's exit code. `first_end` is the code of a worker that ended unasked (None when the pod was
    asked to stop): that code, or 1 if it ended with 0, since a worker that stops by itself leaves partitions
    unconsumed. Otherwise 0 when every worker drained, else the first non-zero code."""
    if first_end is not None:
        return first_end or 1
    return next((c for c in codes if c != 0), 0)


def follow_supervisor() -> None:
    """In a worker: drain (SIGTERM) when the supervisor dies, even by SIGKILL, so no worker is left consuming
    without one. Linux only (PR_SET_PDEATHSIG); elsewhere a worker outlives a killed supervisor."""
    expected = os.environ.get(SUPERVISOR_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if str(os.getppid()) != expected:  # the supervisor died before the request above
        os.kill(os.getpid(), signal.SIGTERM)


def report_port(port: int | None) -> None:
    """In a worker: tell the supervisor the health port (written whole, then renamed into place)."""
    path = os.environ.get(PORT_FILE_ENV)
    if not path or port is None:
        return
    partial = Path(path + ".partial")
    partial.write_text(str(port))
    partial.replace(path)


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process
    port_file: Path

    def port(self) -> int | None:
        """The worker's health port once it listens, else None."""
        try:
            return int(self.port_file.read_text())
        except (OSError, ValueError):
            return None


class Supervisor:
    """Starts `options.workers` workers, serves the pod's endpoint, and ends them all together."""

    def __init__(self, config: RunnerConfig, options: RunnerOptions) -> None:
        self.config = config
        self.options = options
        self.workers: list[Worker] = []
        self.stopping = False
        self._stop_asked = asyncio.Event()
        self._dir = tempfile.TemporaryDirectory(prefix="algorun-workers-")

    async def start_workers(self) -> None:
        for index in range(self.options.workers):
            if self.stopping:  # a signal came while the first ones started: start no more
                return
            port_file = Path(self._dir.name) / f"worker-{index}.port"
            env = worker_env(os.environ, self.config, self.options, index, port_file)
            process = await asyncio.create_subprocess_exec(*worker_argv(), env=env)
            self.workers.append(Worker(index, process, port_file))
            log.info("worker %s started (pid %s)", index, process.pid)

    def stop_all(self) -> None:
        """SIGTERM to every worker still running: each drains within its grace period."""
        self.stopping = True
        self._stop_asked.set()
        for w in self.workers:
            if w.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.process.send_signal(signal.SIGTERM)

    async def wait(self) -> int:
        """Until every worker ended; the pod's exit code (`pod_exit_code`)."""
        waits = {asyncio.create_task(w.process.wait()): w for w in self.workers}
        pending = set(waits)
        asked = asyncio.create_task(self._stop_asked.wait())
        first_end: int | None = None
        while pending and not self.stopping:
            done, pending = await asyncio.wait(pending | {asked}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(asked)
            ended = [waits[t] for t in done if t in waits]
            if self.stopping or not ended:
                break
            first_end = exit_code(ended[0].process.returncode or 0)
            log.error("worker %s ended by itself (exit %s): stopping the others", ended[0].index, first_end)
            self.stop_all()
        asked.cancel()
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.options.grace_seconds + KILL_MARGIN_S)
            for task in late:
                w = waits[task]
                log.error("worker %s did not end within its grace period: killed", w.index)
                with contextlib.suppress(ProcessLookupError):
                    w.process.kill()
            if late:
                await asyncio.wait(late)
        return pod_exit_code(first_end, [exit_code(w.process.returncode or 0) for w in self.workers])

    def close(self) -> None:
        self._dir.cleanup()


async def supervise(config: RunnerConfig, options: RunnerOptions) -> int:
    """Run `options.workers` workers until a signal (exit 0 when all drained) or until one ends by itself (its
    code). Exit 2 when the setting is out of range or the pod's endpoint cannot listen."""
    if not 1 <= options.workers <= MAX_WORKERS:
        log.error("cannot start: workers=%s, use 1 to %s", options.workers, MAX_WORKERS)
        return 2
    supervisor = Supervisor(config, options)
    endpoint = PodEndpoint(lambda: [w.port() for w in supervisor.workers], options.workers)
    try:
        await endpoint.start(options.health_host, options.health_port)
    except OSError as e:
        log.error("cannot start: health port: %s", e)
        supervisor.close()
        return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.stop_all)
    log.info(
        "runner of %s (%s, %s workers) started; health on :%s",
        config.full_name,
        config.executor.value,
        options.workers,
        endpoint.port,
    )
    try:
        await supervisor.start_workers()
        code = await supervisor.wait()
    finally:
        supervisor.stop_all()
        await endpoint.stop()
        supervisor.close()
    log.info("runner stopped (exit %s)", code)
    return code
