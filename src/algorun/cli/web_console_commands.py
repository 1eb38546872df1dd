"""`algorun console --kubeconfig FILE`: the web console for the pipelines on a Kubernetes cluster, served on this
machine with the user's own credentials (nothing is installed in the cluster)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from algorun.cli import console as console_


def console(
    kubeconfig: Annotated[Path, typer.Option("--kubeconfig", help="The kubeconfig whose credentials are used.")],
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace's pipelines (default: every one).")
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="The kubeconfig context (default: current).")] = None,
    port: Annotated[int, typer.Option("--port", help="The console's port (a free one when it is taken).")] = 18090,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve the web console for the PipelineDeployments this kubeconfig may read; Ctrl-C stops it."""
    from lightkube.config.client_adapter import AsyncClient, ConnectionParams
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.core.exceptions import ConfigError

    from algorun.console.kube_source import discover
    from algorun.console.server import ConsoleServer
    from algorun.console.source import ActionRefused

    if not kubeconfig.is_file():
        raise typer.BadParameter(f"{kubeconfig}: no such file", param_hint="--kubeconfig")
    try:
        single = KubeConfig.from_file(kubeconfig).get(context)
    except ConfigError as exc:
        raise typer.BadParameter(f"{kubeconfig}: {exc}", param_hint="--kubeconfig") from exc
    if single is None:
        raise typer.BadParameter(f"{kubeconfig}: no context {context or '(current)'}", param_hint="--kubeconfig")

    async def serve() -> int:
        async with AsyncClient(single, ConnectionParams()) as http:
            try:
                sources = await discover(http, namespace)
            except ActionRefused as exc:
                console_.print_error(console_.err(), str(exc))
                return 1
            server = ConsoleServer(sources, host=host, port=port)
            await server.start()
            names = ", ".join(s.pipeline for s in sources) or "none found"
            console_.out().print(f"console: {server.url} (pipelines: {names})", highlight=False)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            try:
                await stop.wait()
            finally:
                await server.stop()
            return 0

    raise typer.Exit(asyncio.run(serve()))


def register(app: typer.Typer) -> None:
    app.command("console")(console)
