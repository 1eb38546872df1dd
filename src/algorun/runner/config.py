"""The runner's inputs: the `RunnerConfig` JSON written by `algorun.api` (*config*: what to run, mounted by the
operator), and `RunnerOptions` (*settings*: how the process runs it: concurrency, executable mode, stderr policy,
exactly-once...), as `algorun.settings` defines both words.

Each setting is declared once, in `RunnerOptions`, with its default, its unit (in its name: `_seconds`, `_ms`) and
a docstring. Its environment name is `ALGORUN_RUNNER_{FIELD}` (upper case). Precedence, lowest first: the
default, the config's `runtime` block (what the pipeline YAML says), the environment, then the CLI's options
(`from_env(**overrides)`). See docs/runner.md and docs/settings.md.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from algorun.api.configs import RunnerConfig
from algorun.settings import ComponentSettings, SettingsError

ExecMode = Literal["per-message", "streaming"]
StderrPolicy = Literal["log", "fail"]
GrpcMode = Literal["unary", "stream"]

__all__ = ["ExecMode", "GrpcMode", "RunnerOptions", "SettingsError", "StderrPolicy", "load_config"]


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


def _instance_name() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


_OPTION_NAMES = {"grace_seconds": "--grace"}
"""Fields whose CLI option is not `--{field}`."""


class RunnerOptions(ComponentSettings):
    """How to run. Every field can be set by `ALGORUN_RUNNER_{FIELD}` (upper case); CLI options win.

    Derive a variant with `model_copy(update=...)` (the benchmark and the test harness do)."""

    model_config = SettingsConfigDict(env_prefix="ALGORUN_RUNNER_")

    bus: str | None = Field(default=None, validation_alias=AliasChoices("ALGORUN_RUNNER_BUS", "ALGORUN_BUS"))
    """`kafka://host:port` or `local:///path/log.db`; None: Kafka from KAFKA_BROKERS (also `ALGORUN_BUS`)."""
    health_port: int = Field(default=10080, ge=0, le=65535)
    """Port of /health, /ready and /metrics (0: any free port)."""
    health_host: str = "0.0.0.0"
    """Address the health server listens on."""
    concurrency: int = Field(default=64, ge=1)
    """Runs in progress at once, over every lane."""
    workers: int = Field(default=1, ge=1)
    """Runner processes in this pod or `algorun run` instance, each a member of the instance's consumer group."""
    key_concurrency: bool = False
    """Run the keys of a partition in parallel (a lane per key), keeping each key's order."""
    max_buffered: int = Field(default=2000, ge=1)
    """Fetched messages queued per partition before its consumption pauses (it resumes below half)."""
    exactly_once: bool = False
    """Kafka transactions: outputs and input offsets commit together (Kafka-only effects)."""
    exec_mode: ExecMode = "per-message"
    """Executable algos: a process per message, or one long-running process (`streaming`)."""
    stream_window: int = Field(default=64, ge=1)
    """Streaming executables and gRPC streams: requests in flight at once."""
    grpc_mode: GrpcMode = "unary"
    """gRPC algos: one call per message, or one bidirectional stream (`stream`)."""
    stderr_policy: StderrPolicy = "log"
    """Executable stderr: logged, or a failure of the run (`fail`)."""
    grace_seconds: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    """Time to finish in-flight work on SIGTERM before exiting."""
    staging_ttl_seconds: float = Field(default=600.0, ge=0, allow_inf_nan=False)
    """How long `run=false` parts wait for their run before they are dead-lettered."""
    commit_interval_seconds: float = Field(default=0.2, gt=0, allow_inf_nan=False)
    """At-least-once: how often the finished prefix of offsets is committed."""
    session_timeout_ms: int | None = Field(default=None, ge=1)
    """Kafka: how long a crashed runner keeps its partitions (None: librdkafka's default, 45 s)."""
    group_instance_id: str | None = None
    """Kafka static membership: a restarted pod with the same id gets its partitions back without a rebalance."""
    workdir: Path = Field(default_factory=Path.cwd)
    """Working directory of the algo (python imports, executable cwd)."""
    data_dir: Path | None = None
    """Where the runner keeps files of its own (None: none)."""
    instance: str = Field(
        default_factory=_instance_name, validation_alias=AliasChoices("ALGORUN_RUNNER_INSTANCE", "INSTANCE_NAME")
    )
    """This process's name in logs and in the transactional id (also `INSTANCE_NAME`)."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        lower: Mapping[str, Any] | None = None,
        config: RunnerConfig | None = None,
        **overrides: Any,
    ) -> Self:
        """Options from, in increasing precedence: the built-in defaults, the runner config's `runtime` block
        (what the pipeline YAML says), `ALGORUN_RUNNER_*` variables, then `overrides` (CLI options)."""
        runtime = dict(lower or {})
        if config is not None:
            runtime.update(config.runtime.model_dump(exclude_none=True, mode="json"))
        return super().from_env(env, lower={k: v for k, v in runtime.items() if k in cls.model_fields}, **overrides)

    @classmethod
    def option_name(cls, name: str) -> str:
        return _OPTION_NAMES.get(name) or super().option_name(name)

    def consumer_config(self) -> dict[str, str | int | float | bool]:
        """The librdkafka consumer settings these options ask for (session timeout, static membership)."""
        consumer: dict[str, str | int | float | bool] = {}
        if self.session_timeout_ms is not None:
            consumer["session.timeout.ms"] = self.session_timeout_ms
        if self.group_instance_id:
            consumer["group.instance.id"] = self.group_instance_id
        return consumer
