"""`algorun endpoint`: the ingestion gateway of one pipeline (HTTP, gRPC, write-ahead log)."""

from __future__ import annotations

from typing import Annotated

import typer

from algorun.cli.component_options import BusOption, ConfigOption, LogLevelOption, bus_target, read_config, run_uvloop


def endpoint(
    config: ConfigOption,
    bus: BusOption = None,
    http_listen: Annotated[str | None, typer.Option(help="HTTP listen address (default :18080).")] = None,
    grpc_listen: Annotated[str | None, typer.Option(help="gRPC listen address (default :18282).")] = None,
    monitoring_listen: Annotated[str | None, typer.Option(help="Metrics/health address (default :28080).")] = None,
    log_level: LogLevelOption = "info",
) -> None:
    """Run the ingestion endpoint: HTTP on 18080, gRPC on 18282, metrics on 28080 (see docs/endpoint.md)."""
    from pydantic import ValidationError

    from algorun.api.configs import EndpointConfig, endpoint_config
    from algorun.endpoint.main import serve
    from algorun.endpoint.settings import SettingsError, build_settings
    from algorun.telemetry import configure_logging

    data, topology = read_config(config)
    try:
        cfg = EndpointConfig.model_validate(data) if data is not None else endpoint_config(topology)
        settings = build_settings(
            cfg, http_listen=http_listen, grpc_listen=grpc_listen, monitoring_listen=monitoring_listen
        )
    except (ValidationError, SettingsError) as e:
        raise typer.BadParameter(f"{config}: {e}") from e
    ident = cfg.identity
    configure_logging("endpoint", instance=f"{ident.deployment_owner}/{ident.deployment_name}", level=log_level)
    run_uvloop(serve(cfg, settings, bus_target(bus, cfg.kafka.brokers)))


def register(app: typer.Typer) -> None:
    app.command("endpoint")(endpoint)
