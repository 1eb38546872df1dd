"""`algorun endpoint`: the ingestion gateway of one pipeline (HTTP, gRPC, write-ahead log)."""

from __future__ import annotations

from typing import Annotated

import typer

from algorun.cli.component_options import BusOption, ConfigOption, LogLevelOption, bus_target, read_config, run_uvloop


def endpoint(
    config: ConfigOption,
    bus: BusOption = None,
    http_listen: Annotated[str | None, typer.Option(help="HTTP listen address (EP_SERVER_HTTP_LISTEN).")] = None,
    grpc_listen: Annotated[str | None, typer.Option(help="gRPC listen address (EP_SERVER_GRPC_LISTEN).")] = None,
    monitoring_listen: Annotated[
        str | None, typer.Option(help="Metrics/health address (EP_SERVER_MONITORING_LISTEN).")
    ] = None,
    log_level: LogLevelOption = None,
) -> None:
    """Run the ingestion endpoint: HTTP, gRPC and metrics (see docs/endpoint.md).

    Its settings are ALGORUN_ENDPOINT_* variables (docs/settings.md); the options override them."""
    from pydantic import ValidationError

    from algorun.api.configs import EndpointConfig, endpoint_config
    from algorun.endpoint.main import serve
    from algorun.endpoint.settings import SettingsError, build_settings
    from algorun.telemetry import configure_logging

    data, topology = read_config(config)
    try:
        cfg = EndpointConfig.model_validate(data) if data is not None else endpoint_config(topology)
    except ValidationError as e:
        raise typer.BadParameter(f"{config}: {e}") from e
    try:
        settings = build_settings(
            cfg,
            http_listen=http_listen,
            grpc_listen=grpc_listen,
            monitoring_listen=monitoring_listen,
            log_level=log_level,
        )
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    ident = cfg.identity
    configure_logging(
        "endpoint", instance=f"{ident.deployment_owner}/{ident.deployment_name}", level=settings.log_level
    )
    run_uvloop(serve(cfg, settings, bus_target(bus, cfg.kafka.brokers)))


def register(app: typer.Typer) -> None:
    app.command("endpoint")(endpoint)
