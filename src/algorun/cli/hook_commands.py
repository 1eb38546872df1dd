"""`algorun hook`: the event-hook runner of one pipeline (EventHook inputs to webhooks)."""

from __future__ import annotations

from typing import Annotated

import typer

from algorun.cli.component_options import BusOption, ConfigOption, LogLevelOption, bus_target, read_config, run_uvloop


def hook(
    config: ConfigOption,
    bus: BusOption = None,
    health_port: Annotated[int, typer.Option("--health-port", help="Port of /health, /ready, /metrics.")] = 10080,
    log_level: LogLevelOption = "info",
) -> None:
    """Run the event-hook runner: deliver the EventHook inputs to their webhooks (see docs/hooks.md)."""
    from pydantic import ValidationError

    from algorun.api.configs import HookConfig, hook_config
    from algorun.hooks.main import serve
    from algorun.hooks.settings import SettingsError, build_settings
    from algorun.telemetry import configure_logging

    data, topology = read_config(config)
    try:
        cfg = HookConfig.model_validate(data) if data is not None else hook_config(topology)
        settings = build_settings(cfg, monitoring_port=health_port)
    except (ValidationError, SettingsError) as e:
        raise typer.BadParameter(f"{config}: {e}") from e
    ident = cfg.identity
    configure_logging("hook", instance=f"{ident.deployment_owner}/{ident.deployment_name}", level=log_level)
    run_uvloop(serve(cfg, settings, bus_target(bus, cfg.kafka.brokers)))


def register(app: typer.Typer) -> None:
    app.command("hook")(hook)
