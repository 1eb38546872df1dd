"""How the runner hands a request to the algo. `create(config, options)` picks one from the config's executor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from algorun.api.enums import ExecutorKind

if TYPE_CHECKING:
    from algorun.api.configs import RunnerConfig
    from algorun.runner.config import RunnerOptions
    from algorun.runner.executors.base import Executor


def create(config: RunnerConfig, options: RunnerOptions) -> Executor:
    """The executor for `config.executor`; raises ValueError for executors the runner does not run."""
    kind = config.executor
    if kind == ExecutorKind.HTTP:
        from algorun.runner.executors.http import HttpExecutor

        return HttpExecutor(config, options)
    if kind == ExecutorKind.GRPC:
        from algorun.runner.executors.grpc import GrpcExecutor

        return GrpcExecutor(config, options)
    if kind == ExecutorKind.PYTHON:
        from algorun.runner.executors.python import PythonExecutor

        return PythonExecutor(config, options)
    if kind == ExecutorKind.EXECUTABLE:
        if options.exec_mode == "streaming":
            from algorun.runner.executors.streaming import StreamingExecutor

            return StreamingExecutor(config, options)
        from algorun.runner.executors.executable import ExecutableExecutor

        return ExecutableExecutor(config, options)
    raise ValueError(
        f"executor {kind.value!r} is not run by algorun runner"
        + (
            " (Delegated algos do their own Kafka I/O; see `algorun runner --print-env`)"
            if kind == ExecutorKind.DELEGATED
            else ""
        )
    )
