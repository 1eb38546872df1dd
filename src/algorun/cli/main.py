"""Entry point of the `algorun` command. Subcommands live in their own modules and import heavy
dependencies (kopf, confluent-kafka, aiohttp) only when they run, so `algorun --help` stays fast."""

from __future__ import annotations

import typer

from algorun import __version__
from algorun.cli import (
    endpoint_commands,
    hook_commands,
    local_commands,
    operator_commands,
    runner_commands,
    spec_commands,
    web_console_commands,
)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    # A crash prints a plain traceback: component logs stay greppable, and local variables (which can hold
    # credentials) are never printed.
    pretty_exceptions_enable=False,
    help="algorun: declarative data pipelines on Kafka, on Kubernetes or on one machine.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"algorun {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """algorun: declarative data pipelines on Kafka, on Kubernetes or on one machine."""


spec_commands.register(app)
runner_commands.register(app)
local_commands.register(app)
operator_commands.register(app)
endpoint_commands.register(app)
hook_commands.register(app)
web_console_commands.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
