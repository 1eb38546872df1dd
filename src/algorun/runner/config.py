"""The runner's inputs: the `RunnerConfig` JSON written by `algorun.api` (what to run), and `RunnerOptions`
(how to run it: concurrency, executable mode, stderr policy, exactly-once...), which come from CLI options or
`ALGORUN_RUNNER_*` environment variables until the config carries them (see docs/runner.md)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
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
    """How to run. Every field can be set by `ALGORUN_RUNNER_{FIELD}` (upper case), CLI options win."""

    bus: str | None = None
    health_port: int = 10080
    health_host: str = "0.0.0.0"
    concurrency: int = 64
    key_concurrency: bool = False
    max_buffered: int = 2000
    exactly_once: bool = False
    exec_mode: ExecMode = "per-message"
    stream_window: int = 64
    grpc_mode: GrpcMode = "unary"
    stderr_policy: StderrPolicy = "log"
    grace_seconds: float = 30.0
    staging_ttl_seconds: float = 600.0
    commit_interval_seconds: float = 0.2
    workdir: Path = field(default_factory=Path.cwd)
    data_dir: Path | None = None
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
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


_BOOLS = {"key_concurrency", "exactly_once"}
_INTS = {"health_port", "concurrency", "max_buffered", "stream_window"}
_FLOATS = {"grace_seconds", "staging_ttl_seconds", "commit_interval_seconds"}
_PATHS = {"workdir", "data_dir"}


def _parse(name: str, raw: str) -> Any:
    try:
        if name in _BOOLS:
            return raw.strip().lower() in ("1", "t", "true", "yes", "on")
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
        if name in _PATHS:
            return Path(raw)
    except ValueError as err:
        raise ValueError(f"{_ENV_PREFIX}{name.upper()}={raw!r}: {err}") from err
    return raw
