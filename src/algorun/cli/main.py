"""Entry point of the `algorun` command."""

from __future__ import annotations

import typer

from algorun import __version__

app = typer.Typer(no_args_is_help=True, add_completion=False, help="algorun: Algo.Run pipelines on Kafka.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"algorun {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """algorun: Algo.Run pipelines on Kafka."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
