"""`algorun hook`: the event-hook runner of one pipeline (EventHook inputs to webhooks)."""

from __future__ import annotations

from typing import Annotated

import typer

from algorun.cli.component_options import BusOption, ConfigOption, LogLevelOption, bus_target, read_config, run_uvloop


def hook(
    config: ConfigOption,
    bus: BusOption = None,
    health_port: Annotated[
        int | None, typer.Option("--health-port", help="Port of /health, /ready, /metrics (ALGORUN_HOOK_HEALTH_PORT).")
    ] = None,
    log_level: LogLevelOption = None,
) -> None:
    """Run the event-hook runner: deliver the EventHook inputs to their webhooks (see docs/hooks.md).

    Its settings are ALGORUN_HOOK_* variables (docs/settings.md); the options override them."""
    from pydantic import ValidationError

    from algorun.api.configs import HookConfig, hook_config
    from algorun.hooks.main import serve
    from algorun.hooks.settings import SettingsError, build_settings
    from algorun.telemetry import configure_logging

    data, topology = read_config(config)
    try:
        cfg = HookConfig.model_validate(data) if data is not None else hook_config(topology)
    except ValidationError as e:
        raise typer.BadParameter(f"{config}: {e}") from e
    try:
        settings = build_settings(cfg, monitoring_port=health_port, log_level=log_level)
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    ident = cfg.identity
    configure_logging("hook", instance=f"{ident.deployment_owner}/{ident.deployment_name}", level=settings.log_level)
    run_uvloop(serve(cfg, settings, bus_target(bus, cfg.kafka.brokers)))


def register(app: typer.Typer) -> None:
    app.command("hook")(hook)
