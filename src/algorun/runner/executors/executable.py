"""The `Executable` executor, per message: one process per run, in its own run directory.

    {entrypoint words} {param value}... {output params} {input args}     (stdin: the StdIn parts)

The process is started before its pipes are read, and stdin/stdout/stderr are pumped
concurrently (no deadlock on any size); the parent environment is inherited; `EnvironmentVariable`,
`FileArrayParameter` and `StdOut` are implemented; a non-zero exit, a timeout, or (policy `fail`) stderr output
is a failure; each file output gets its own directory, so a file goes to its own output only, read once the
process has exited (complete); run directories are deleted afterwards. The timeout kills the whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from algorun.api.base import Param
from algorun.api.configs import RunnerConfig, RunnerInput, RunnerOutput
from algorun.api.enums import InputDeliveryType, OutputDeliveryType
from algorun.runner.config import RunnerOptions, StderrPolicy
from algorun.runner.executors.base import Executor
from algorun.runner.model import AlgoFailure, AlgoUnavailable, Output, Request

log = logging.getLogger(__name__)
MAX_ENV_VALUE = 128 * 1024 - 1  # Linux MAX_ARG_STRLEN: one argument or variable
STDERR_TAIL = 2000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(slots=True)
class Invocation:
    """A fully planned process run: what to execute, with which input, and where its file outputs appear."""

    argv: list[str]
    env: dict[str, str]
    stdin: bytes
    files: dict[Path, bytes] = field(default_factory=dict)
    file_outputs: dict[str, Path] = field(default_factory=dict)
    folder_outputs: dict[str, Path] = field(default_factory=dict)


def safe_name(name: str | None, fallback: str) -> str:
    """A file name from a header: no directories, no dot-dot, never empty."""
    base = _UNSAFE.sub("_", Path(name).name) if name else ""
    return base if base.strip("._") else fallback


def base_argv(entrypoint: str, parameters: list[Param]) -> list[str]:
    """The entrypoint's words (shell-style quoting honoured) and the parameters, in sortOrder."""
    argv = shlex.split(entrypoint)
    if not argv:
        raise ValueError("an Executable algo needs an entrypoint")
    for p in sorted(parameters, key=lambda p: p.sort_order or 0):  # already sorted by the api; stable
        argv.append(p.name)
        if p.value:
            argv.append(p.value)
    return argv


def plan_invocation(
    config: RunnerConfig, request: Request, run_dir: Path, base_env: dict[str, str] | None = None
) -> Invocation:
    """The process for one run (pure apart from reading os.environ by default)."""
    assert config.entrypoint is not None
    argv = base_argv(config.entrypoint, request.parameters or config.parameters)
    env = dict(os.environ if base_env is None else base_env)
    in_dir, out_dir = run_dir / "input", run_dir / "output"
    env.update(
        {
            "ENDPOINT_PARAMS": request.endpoint_params or "",
            "ALGORUN_TRACE_ID": request.trace_id,
            "ALGORUN_INPUT_DIR": str(in_dir),
            "ALGORUN_OUTPUT_DIR": str(out_dir),
        }
    )
    inv = Invocation(argv, env, b"")
    for out in config.outputs:
        _plan_output(inv, out, out_dir, request.trace_id)
    _plan_input(inv, request.input, request, in_dir)
    return inv


def _plan_output(inv: Invocation, out: RunnerOutput, out_dir: Path, trace_id: str) -> None:
    kind = out.output_delivery_type
    own = out_dir / safe_name(out.name, "output")
    if kind == OutputDeliveryType.FOLDER_PARAMETER:
        inv.folder_outputs[out.name] = own
        inv.argv.extend([out.parameter, str(own)] if out.parameter else [str(own)])
    elif kind == OutputDeliveryType.FILE_PARAMETER:
        path = own / safe_name(trace_id, "output")
        inv.file_outputs[out.name] = path
        inv.argv.extend([out.parameter, str(path)] if out.parameter else [str(path)])


def _plan_input(inv: Invocation, algo_input: RunnerInput, request: Request, in_dir: Path) -> None:
    kind = algo_input.input_delivery_type
    parts = request.parts
    if kind in (InputDeliveryType.STD_IN, InputDeliveryType.HTTP, InputDeliveryType.HTTPS, InputDeliveryType.GRPC):
        inv.stdin = b"".join(p.data for p in parts)
        return
    if kind == InputDeliveryType.ENVIRONMENT_VARIABLE:
        var = algo_input.environment_variable or _UNSAFE.sub("_", algo_input.name).upper()
        value = b"".join(p.data for p in parts)
        if len(value) > MAX_ENV_VALUE:
            raise AlgoFailure(
                f"input {algo_input.name}: {len(value)} bytes do not fit in environment variable {var} "
                f"(limit {MAX_ENV_VALUE}); use a FileParameter input",
                "InputTooLarge",
            )
        try:
            inv.env[var] = value.decode()
        except UnicodeDecodeError:
            raise AlgoFailure(
                f"input {algo_input.name}: environment variable {var} needs UTF-8 text", "BadInput"
            ) from None
        return
    # File inputs: one file per part under the input directory, each under a distinct name (none overwrites another).
    paths: list[Path] = []
    used: set[str] = set()
    for i, part in enumerate(parts):
        name = safe_name(part.file_name, f"{safe_name(request.trace_id, 'part')}-{i}")
        if name in used:
            name = f"{i}-{name}"
        used.add(name)
        path = in_dir / name
        inv.files[path] = part.data
        paths.append(path)
    fp = algo_input.file_parameter
    param = fp.parameter if fp else None
    delimiter = fp.delimiter if fp else None
    if kind == InputDeliveryType.MAPPED_PATH:
        return
    if delimiter:
        inv.argv.extend([*([param] if param else []), delimiter.join(str(p) for p in paths)])
    elif kind == InputDeliveryType.FILE_ARRAY_PARAMETER:
        inv.argv.extend([*([param] if param else []), *(str(p) for p in paths)])
    else:  # FileParameter: the named parameter before each file
        for p in paths:
            inv.argv.extend([param, str(p)] if param else [str(p)])


def collect_outputs(config: RunnerConfig, inv: Invocation, stdout: bytes) -> list[Output]:
    """Outputs of a finished process: stdout for StdOut outputs, the files it wrote for file outputs."""
    found: list[Output] = []
    for out in config.outputs:
        kind = out.output_delivery_type
        if kind in (OutputDeliveryType.STD_OUT, OutputDeliveryType.HTTP_RESPONSE):
            found.append(Output(out.name, stdout, content_type=out.content_type))
        elif kind == OutputDeliveryType.FILE_PARAMETER:
            path = inv.file_outputs[out.name]
            if path.is_file():
                found.append(Output(out.name, path.read_bytes(), content_type=out.content_type, file_name=path.name))
        elif kind == OutputDeliveryType.FOLDER_PARAMETER:
            root = inv.folder_outputs[out.name]
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                rel = str(path.relative_to(root))
                found.append(Output(out.name, path.read_bytes(), content_type=out.content_type, file_name=rel))
    return found


def kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class ExecutableExecutor(Executor):
    """Runs the algo's entrypoint once per run, in a run directory of its own (module docstring): a non-zero
    exit, a timeout or, with policy `fail`, stderr output is the message's failure."""

    def __init__(self, config: RunnerConfig, options: RunnerOptions) -> None:
        super().__init__(config)
        if not config.entrypoint:
            raise ValueError("an Executable algo needs the version's entrypoint")
        self._argv0 = base_argv(config.entrypoint, [])[0]
        self._cwd = options.workdir
        self._data_dir = options.data_dir
        self._stderr_policy: StderrPolicy = options.stderr_policy
        self._timeout = float(config.timeout_seconds) if config.timeout_seconds else None
        self._own_dir: Path | None = None

    async def start(self) -> None:
        if self._data_dir is None:
            import tempfile

            self._own_dir = Path(tempfile.mkdtemp(prefix="algorun-runner-"))
            self._data_dir = self._own_dir
        self._data_dir.mkdir(parents=True, exist_ok=True)

    def _resolve(self) -> str | None:
        argv0 = self._argv0
        if os.sep in argv0:
            path = argv0 if os.path.isabs(argv0) else str(self._cwd / argv0)
            return path if os.access(path, os.X_OK) else None
        return shutil.which(argv0)

    async def check(self) -> str | None:
        return None if self._resolve() else f"entrypoint {self._argv0!r} is not an executable file (or not on PATH)"

    async def run(self, request: Request) -> list[Output]:
        assert self._data_dir is not None, "start() first"
        run_dir = self._data_dir / f"run-{uuid.uuid4().hex}"
        try:
            inv = plan_invocation(self.config, request, run_dir)
            for path, data in inv.files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            for path in [*inv.file_outputs.values()]:
                path.parent.mkdir(parents=True, exist_ok=True)
            for path in inv.folder_outputs.values():
                path.mkdir(parents=True, exist_ok=True)
            (run_dir / "input").mkdir(parents=True, exist_ok=True)
            stdout = await self._execute(inv, request.trace_id)
            return collect_outputs(self.config, inv, stdout)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    async def _execute(self, inv: Invocation, trace_id: str) -> bytes:
        try:
            proc = await asyncio.create_subprocess_exec(
                *inv.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=inv.env,
                cwd=self._cwd,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError) as e:
            raise AlgoUnavailable(f"cannot start {inv.argv[0]!r}: {e}") from e
        try:
            async with asyncio.timeout(self._timeout):
                stdout, stderr = await exchange(proc, inv.stdin)
        except TimeoutError:
            kill_group(proc)
            await proc.wait()
            raise AlgoFailure(f"{inv.argv[0]} was killed after the {self._timeout}s timeout", "Timeout") from None
        except BaseException:
            kill_group(proc)
            raise
        finally:
            kill_group(proc)  # children it left behind
        text = stderr[-STDERR_TAIL:].decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            raise AlgoFailure(
                f"{inv.argv[0]} exited with {_status(proc.returncode)}" + (f": {text}" if text else ""), "ExitStatus"
            )
        if text:
            if self._stderr_policy == "fail":
                raise AlgoFailure(f"{inv.argv[0]} wrote to stderr (stderr policy fail): {text}", "Stderr")
            log.warning("algo stderr: %s", text, extra={"source": "algo"})
        return stdout

    async def close(self) -> None:
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)


async def exchange(proc: asyncio.subprocess.Process, data: bytes | None) -> tuple[bytes, bytes]:
    """Write `data` to the process's stdin and close it, read stdout and stderr to their end, wait for the exit.

    A process that exits, or closes its stdin, before taking all of `data` is not an error here: its exit status
    and what it wrote decide, as for any process. `communicate` holds to that on asyncio's loop but not on
    uvloop's, which reports a write to a pipe closed at the process's exit as RuntimeError: a quick algo that
    does not read its stdin would fail its run as an internal error (never committed, never retried).
    """
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin = proc.stdin

    async def feed() -> None:
        try:
            if data and not stdin.is_closing():
                stdin.write(data)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if not stdin.is_closing():
                stdin.close()

    stdout, stderr, _ = await asyncio.gather(proc.stdout.read(), proc.stderr.read(), feed())
    await proc.wait()
    return stdout, stderr


def _status(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"
