"""`algorun runner` (the algo-runner of one algo instance) and `algorun replay` (dead letters back in).

Heavy modules (confluent-kafka, aiohttp, grpc) are imported inside the commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from algorun.api.configs import RunnerConfig
    from algorun.runner.config import RunnerOptions

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Runner config JSON (else the ALGO_RUNNER_CONFIG variable).")
]
BusOpt = Annotated[
    str | None,
    typer.Option(
        "--bus",
        help="kafka://host:port or local:///path/log.db. Default: Kafka at KAFKA_BROKERS (or the config's brokers) "
        "with the KAFKA_TLS/KAFKA_AUTH_* security settings.",
    ),
]


def runner(
    config: ConfigOpt = None,
    bus: BusOpt = None,
    health_port: Annotated[int | None, typer.Option(help="Port of /health, /ready, /metrics.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Runs in progress at once.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Runner processes, each a member of the instance's consumer group.")
    ] = None,
    key_concurrency: Annotated[
        bool | None, typer.Option("--key-concurrency/--no-key-concurrency", help="Run keys of a partition in parallel.")
    ] = None,
    exactly_once: Annotated[
        bool | None, typer.Option("--exactly-once/--at-least-once", help="Kafka transactions (Kafka-only effects).")
    ] = None,
    exec_mode: Annotated[str | None, typer.Option(help="Executable: per-message or streaming.")] = None,
    stderr_policy: Annotated[str | None, typer.Option(help="Executable stderr: log or fail.")] = None,
    grpc_mode: Annotated[str | None, typer.Option(help="grpc executor: unary or stream.")] = None,
    grace: Annotated[float | None, typer.Option(help="Seconds to finish in-flight work on SIGTERM.")] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Working directory of the algo (python imports, exec cwd).")
    ] = None,
    print_env: Annotated[bool, typer.Option(help="Delegated algos: print their environment and exit.")] = False,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING, ERROR.")] = None,
) -> None:
    """Run one algo instance: consume its inputs, call it, produce its outputs, retry and dead-letter failures.

    Each option overrides a setting, which may also be set as an ALGORUN_RUNNER_<SETTING> variable (e.g.
    ALGORUN_RUNNER_EXEC_MODE=streaming); docs/settings.md lists them with their defaults.
    SIGTERM drains: stop consuming, finish in-flight work, commit, exit 0.
    """
    from algorun.api.enums import ExecutorKind
    from algorun.runner.config import RunnerOptions, load_config
    from algorun.runner.delegated import delegated_env

    try:
        cfg = load_config(config)
        options = RunnerOptions.from_env(
            config=cfg,
            bus=bus,
            health_port=health_port,
            concurrency=concurrency,
            workers=workers,
            key_concurrency=key_concurrency,
            exactly_once=exactly_once,
            exec_mode=exec_mode,
            stderr_policy=stderr_policy,
            grpc_mode=grpc_mode,
            grace_seconds=grace,
            workdir=workdir,
            log_level=log_level,
        )
    except (OSError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if cfg.executor == ExecutorKind.DELEGATED:
        env = delegated_env(cfg, os.environ.get("KAFKA_BROKERS"))
        if print_env or not cfg.entrypoint:
            for k, v in sorted(env.items()):
                typer.echo(f"{k}={v}")
            raise typer.Exit(0)
        import shlex

        argv = shlex.split(cfg.entrypoint)
        os.chdir(options.workdir)
        os.execvpe(argv[0], argv, {**os.environ, **env})
    code = _run_runner(cfg, options)
    raise typer.Exit(code)


def _run_runner(cfg: RunnerConfig, options: RunnerOptions) -> int:
    from algorun.cli.component_options import run_uvloop
    from algorun.runner.main import serve
    from algorun.telemetry import configure_logging

    configure_logging("runner", instance=options.instance, level=options.log_level)
    result: int = run_uvloop(serve(cfg, options))
    return result


def replay(
    config: ConfigOpt = None,
    bus: BusOpt = None,
    to: Annotated[str | None, typer.Option(help="Topic to write to (default: the algo's first retry topic).")] = None,
    trace_id: Annotated[str | None, typer.Option(help="Replay only this traceID (nothing is committed).")] = None,
    limit: Annotated[int | None, typer.Option(help="Replay at most this many messages.")] = None,
    idle: Annotated[float, typer.Option(help="Stop after this many seconds without a new dead letter.")] = 3.0,
) -> None:
    """Replay an algo's dead letters: written back with error and retry state cleared, so they run again."""
    import asyncio

    from algorun.runner.config import RunnerOptions, load_config
    from algorun.runner.replay import replay as do_replay

    try:
        cfg = load_config(config)
        options = RunnerOptions.from_env(config=cfg)
    except (OSError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None

    from algorun.runner.main import open_runner_bus

    async def main() -> None:
        b = open_runner_bus(cfg, bus, options)
        try:
            result = await do_replay(cfg, b, to=to, trace_id=trace_id, limit=limit, idle_seconds=idle)
        finally:
            await b.close()
        where = ", ".join(f"{t}: {n}" for t, n in sorted(result.targets.items())) or "nothing"
        typer.echo(f"replayed {result.replayed} dead letters ({where}); skipped {result.skipped}")

    asyncio.run(main())


def register(app: typer.Typer) -> None:
    app.command("runner")(runner)
    app.command("replay")(replay)
