"""The runner's inputs: the `RunnerConfig` JSON written by `algorun.api` (*config*: what to run, mounted by the
operator), and `RunnerOptions` (*settings*: how the process runs it: concurrency, executable mode, stderr policy,
exactly-once...).

Each option is declared once, in `RunnerOptions`, with its default, its unit (in its name: `_seconds`) and a
docstring. Its environment name is `ALGORUN_RUNNER_{FIELD}` (upper case), parsed by the field's declared type.
Precedence, lowest first: the default, the config's `runtime` block (what the pipeline YAML says), the environment,
then the CLI's options (`from_env(**overrides)`). See docs/runner.md.
"""

from __future__ import annotations

import os
import socket
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from algorun.api.configs import RunnerConfig

ExecMode = Literal["per-message", "streaming"]
StderrPolicy = Literal["log", "fail"]
GrpcMode = Literal["unary", "stream"]


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> RunnerConfig:
    """The config from a file, or inline JSON in `ALGO_RUNNER_CONFIG` (the original's fallback).

    A missing or invalid config is an error naming the file: a runner never runs with nothing.
    """
    e = os.environ if env is None else env
    if path is not None:
        text = Path(path).read_text()
        where = str(path)
    elif e.get("ALGO_RUNNER_CONFIG"):
        text = e["ALGO_RUNNER_CONFIG"]
        where = "ALGO_RUNNER_CONFIG"
    else:
        raise ValueError("no runner config: pass --config FILE (or set ALGO_RUNNER_CONFIG to the JSON)")
    try:
        return RunnerConfig.model_validate_json(text)
    except ValueError as err:
        raise ValueError(f"{where}: invalid runner config: {err}") from err


_ENV_PREFIX = "ALGORUN_RUNNER_"


@dataclass(slots=True)
class RunnerOptions:
    """How to run. Every field can be set by `ALGORUN_RUNNER_{FIELD}` (upper case), CLI options win.

    A dataclass (not a pydantic-settings model): `benchmarks/runner.py` and the runner's test harness derive
    options with `dataclasses.replace`."""

    bus: str | None = None
    """`kafka://host:port` or `local:///path/log.db`; None: Kafka from KAFKA_BROKERS (also `ALGORUN_BUS`)."""
    health_port: int = 10080
    """Port of /health, /ready and /metrics."""
    health_host: str = "0.0.0.0"
    concurrency: int = 64
    """Runs in progress at once, over every lane."""
    workers: int = 1
    """Runner processes in this pod or `algorun run` instance, each a member of the instance's consumer group."""
    key_concurrency: bool = False
    """Run the keys of a partition in parallel (a lane per key), keeping each key's order."""
    max_buffered: int = 2000
    """Fetched messages queued per partition before its consumption pauses (it resumes below half)."""
    exactly_once: bool = False
    """Kafka transactions: outputs and input offsets commit together (Kafka-only effects)."""
    exec_mode: ExecMode = "per-message"
    """Executable algos: a process per message, or one long-running process (`streaming`)."""
    stream_window: int = 64
    """Streaming executables and gRPC streams: requests in flight at once."""
    grpc_mode: GrpcMode = "unary"
    stderr_policy: StderrPolicy = "log"
    """Executable stderr: logged, or a failure of the run (`fail`)."""
    grace_seconds: float = 30.0
    """Time to finish in-flight work on SIGTERM before exiting."""
    staging_ttl_seconds: float = 600.0
    """How long `run=false` parts wait for their run before they are dead-lettered."""
    commit_interval_seconds: float = 0.2
    """At-least-once: how often the finished prefix of offsets is committed."""
    workdir: Path = field(default_factory=Path.cwd)
    """Working directory of the algo (python imports, executable cwd)."""
    data_dir: Path | None = None
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
    """This process's name in logs and in the transactional id (also `INSTANCE_NAME`)."""
    log_level: str = "INFO"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, config: RunnerConfig | None = None, **overrides: Any
    ) -> RunnerOptions:
        """Options from, in increasing precedence: the built-in defaults, the runner config's `runtime` block
        (what the pipeline YAML says), `ALGORUN_RUNNER_*` variables, then `overrides` (CLI options)."""
        e = os.environ if env is None else env
        values: dict[str, Any] = {}
        if config is not None:
            runtime = config.runtime.model_dump(exclude_none=True, mode="json")
            values.update({k: v for k, v in runtime.items() if k in {f.name for f in fields(cls)}})
        for f in fields(cls):
            raw = e.get(_ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw)
        if "bus" not in values and e.get("ALGORUN_BUS"):
            values["bus"] = e["ALGORUN_BUS"]
        if "instance" not in values and e.get("INSTANCE_NAME"):
            values["instance"] = e["INSTANCE_NAME"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        options = cls(**values)
        options.validate()
        return options

    def validate(self) -> None:
        if self.exec_mode not in ("per-message", "streaming"):
            raise ValueError(f"exec mode {self.exec_mode!r}: use per-message or streaming")
        if self.stderr_policy not in ("log", "fail"):
            raise ValueError(f"stderr policy {self.stderr_policy!r}: use log or fail")
        if self.grpc_mode not in ("unary", "stream"):
            raise ValueError(f"grpc mode {self.grpc_mode!r}: use unary or stream")
        if self.concurrency < 1 or self.max_buffered < 1 or self.stream_window < 1:
            raise ValueError("concurrency, max_buffered and stream_window must be at least 1")


def _truthy(raw: str) -> bool:
    return raw.strip().lower() in ("1", "t", "true", "yes", "on")


_PARSERS: dict[object, Callable[[str], Any]] = {bool: _truthy, int: int, float: float, Path: Path}
"""How an environment value becomes a field's declared type; any other type (str, a Literal) takes the text."""


def _parser(annotation: object) -> Callable[[str], Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # `X | None`: parsed as X
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = kinds[0] if len(kinds) == 1 else str
    return _PARSERS.get(annotation, str)


_FIELD_PARSERS = {name: _parser(kind) for name, kind in typing.get_type_hints(RunnerOptions).items()}


def _parse(name: str, raw: str) -> Any:
    try:
        return _FIELD_PARSERS[name](raw)
    except ValueError as err:
        raise ValueError(f"{_ENV_PREFIX}{name.upper()}={raw!r}: {err}") from err
