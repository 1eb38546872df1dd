"""`algorun run`: load the pipeline, prepare the data plane, start and supervise every component, show the live
view or run until idle, and shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import os
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from algorun.api import load_pipeline
from algorun.api.enums import KafkaAuthType
from algorun.api.topology import Topology
from algorun.bus import Bus, KafkaSettings, TopicSpec, open_bus
from algorun.local.connect import ConnectError, apply_connectors, delete_connectors
from algorun.local.plan import LocalPlan, Ports, build_plan
from algorun.local.progress import Snapshot, quiescent, snapshot
from algorun.local.supervisor import State, Supervisor
from algorun.local.view import render


@dataclass
class RunOptions:
    files: list[Path]
    state_dir: Path | None = None
    kafka: KafkaSettings | None = None
    connect_url: str | None = None
    algo_overrides: dict[str, str] = field(default_factory=dict)
    until_idle: bool = False
    inputs: list[tuple[str | None, Path]] = field(default_factory=list)
    """(endpoint path name or None for the only path, file) to send once everything is ready."""
    ready_timeout: float = 60.0
    idle_timeout: float = 300.0
    ports: Ports = field(default_factory=Ports)
    live: bool = True
    console: bool = True
    """Serve the web console while the pipeline runs (not with `until_idle`)."""
    console_port: int = 18090
    """The console's port; a free one when it is taken."""


class RunFailed(Exception):
    """The run could not go on; the message says which component and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kafka_env(settings: KafkaSettings) -> dict[str, str]:
    """The original runtime's environment variables, which every component reads its Kafka settings from."""
    env = {"KAFKA_BROKERS": settings.bootstrap_servers}
    if settings.tls:
        env["KAFKA_TLS"] = "true"
    if settings.ca_location:
        env["KAFKA_TLS_CA_LOCATION"] = settings.ca_location
    if settings.auth_type is not KafkaAuthType.NONE:
        env["KAFKA_AUTH_TYPE"] = settings.auth_type.value
    if settings.cert_location:
        env["KAFKA_AUTH_TLS_USER_LOCATION"] = settings.cert_location
    if settings.key_location:
        env["KAFKA_AUTH_TLS_KEY_LOCATION"] = settings.key_location
    if settings.username:
        env["KAFKA_AUTH_USERNAME"] = settings.username
    if settings.password:
        env["KAFKA_AUTH_PASSWORD"] = settings.password.get_secret_value()
    return env


def state_dir_for(files: Sequence[Path], explicit: Path | None) -> Path:
    return explicit if explicit is not None else files[0].resolve().parent / ".algorun"


def local_bus_url(state_dir: Path) -> str:
    return f"local://{state_dir.resolve() / 'log.db'}"


def check_endpoint_credentials(topology: Topology, environ: Mapping[str, str]) -> None:
    """`spec.endpoint.auth` names a Kubernetes Secret, which one machine does not have: the credentials come from
    the environment instead (`ALGORUN_ENDPOINT_BEARER_TOKENS`, `_API_KEYS`, their `_FILE`s or `_CREDENTIALS_DIR`),
    and while they configure none the pipeline does not start (its endpoint would accept anyone)."""
    from algorun.endpoint.settings import SettingsError, credentials_from_env

    auth = topology.spec.endpoint.auth
    if auth is None or not topology.spec.endpoint.paths:
        return
    try:
        credentials, _ = credentials_from_env(environ)
    except SettingsError as e:
        raise RunFailed(f"spec.endpoint.auth: {e}") from e
    if not credentials.enabled:
        raise RunFailed(
            f"spec.endpoint.auth asks for credentials (Secret {auth.secret_name!r} on Kubernetes); on this machine "
            "set ALGORUN_ENDPOINT_BEARER_TOKENS, ALGORUN_ENDPOINT_API_KEYS or ALGORUN_ENDPOINT_CREDENTIALS_DIR"
        )


async def run(options: RunOptions, console: Console) -> int:
    """Run a pipeline; the exit code: 0 ok, 1 dead letters or a failed component, 2 not idle in time."""
    _, topology = load_pipeline(options.files)
    check_endpoint_credentials(topology, os.environ)
    pipeline_dir = options.files[0].resolve().parent
    state_dir = state_dir_for(options.files, options.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if options.kafka is not None:
        bus_env = {"ALGORUN_BUS": f"kafka://{options.kafka.bootstrap_servers}", **kafka_env(options.kafka)}
        bus: Bus = open_bus(options.kafka)
    else:
        url = local_bus_url(state_dir)
        bus_env = {"ALGORUN_BUS": url}
        bus = open_bus(url)
    plan = build_plan(
        topology,
        state_dir=state_dir,
        workdir=pipeline_dir,
        bus_env=bus_env,
        allocate=free_port,
        ports=options.ports,
        algo_overrides=options.algo_overrides,
        kafka=options.kafka is not None,
    )
    if plan.connectors and not options.connect_url:
        names = ", ".join(c.name for c in plan.connectors)
        raise RunFailed(f"the pipeline has data connectors ({names}): pass --connect URL of a Kafka Connect worker")
    for path, content in plan.config_files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2))
    connectors_applied = False
    try:
        await bus.create_topics([TopicSpec(name, partitions) for name, partitions in sorted(plan.topics.items())])
        if plan.connectors and options.connect_url:
            connectors_applied = True
            await apply_connectors(options.connect_url, plan.connectors)
        supervisor = Supervisor(plan.processes, state_dir / "logs")
        await supervisor.start()
        try:
            return await _supervise(options, console, topology, plan, supervisor, bus, state_dir)
        finally:
            console.print("[dim]stopping: draining in-flight work...[/dim]")
            await supervisor.stop()
    except ConnectError as exc:
        raise RunFailed(str(exc)) from exc
    finally:
        if connectors_applied and options.connect_url:
            # The connectors belong to this run: a source left running would keep filling topics nobody reads.
            with contextlib.suppress(ConnectError):
                await delete_connectors(options.connect_url, [c.name for c in plan.connectors])
        await bus.close()


async def _supervise(
    options: RunOptions,
    console: Console,
    topology: Topology,
    plan: LocalPlan,
    supervisor: Supervisor,
    bus: Bus,
    state_dir: Path,
) -> int:
    log_dir = str(state_dir / "logs")
    if not await supervisor.wait_ready(options.ready_timeout):
        _report_failures(console, supervisor)
        return 1
    console.print(f"[green]ready[/green]: {len(plan.processes)} processes")
    for url in plan.endpoint_urls:
        console.print(f"  POST {url}")
    if options.until_idle:
        return await _until_idle(options, console, plan, supervisor, bus)
    async with _web_console(options, console, topology, plan, supervisor, bus):
        return await _live(console, plan, supervisor, bus, log_dir)


@contextlib.asynccontextmanager
async def _web_console(
    options: RunOptions, console: Console, topology: Topology, plan: LocalPlan, supervisor: Supervisor, bus: Bus
) -> AsyncIterator[None]:
    """The web console on this run (algorun.console), its URL printed; nothing when turned off."""
    if not options.console:
        yield
        return
    from algorun.console.server import ConsoleServer
    from algorun.local.console_source import LocalSource

    source = LocalSource(topology, plan, supervisor, bus, options.ports)
    server = ConsoleServer([source], host=options.ports.host, port=options.console_port)
    await server.start()
    console.print(f"  console: {server.url}", highlight=False)
    try:
        yield
    finally:
        await server.stop()
        await source.close()


async def _live(console: Console, plan: LocalPlan, supervisor: Supervisor, bus: Bus, log_dir: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with Live(render(supervisor, plan, None, log_dir), console=console, refresh_per_second=2) as live:
            while not stop.is_set():
                snap = None
                with contextlib.suppress(Exception):
                    snap = await snapshot(bus, plan)
                live.update(render(supervisor, plan, snap, log_dir))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 1 if supervisor.failed() else 0


async def _until_idle(options: RunOptions, console: Console, plan: LocalPlan, supervisor: Supervisor, bus: Bus) -> int:
    for path_name, file in options.inputs:
        await send_file(plan, path_name, file, console)
    previous: Snapshot | None = None
    deadline = asyncio.get_running_loop().time() + options.idle_timeout
    while True:
        if supervisor.failed():
            _report_failures(console, supervisor)
            return 1
        current = await snapshot(bus, plan)
        if quiescent(previous, current):
            break
        if asyncio.get_running_loop().time() > deadline:
            console.print(f"[red]not idle after {options.idle_timeout:.0f}s: backlog {current.backlog}[/red]")
            return 2
        previous = current
        await asyncio.sleep(0.3)  # polling the data plane's offsets
    _summary(console, plan, current)
    if current.dead_letters:
        console.print(f"[red]{current.dead_letters} message(s) dead-lettered[/red]")
        return 1
    return 0


def _summary(console: Console, plan: LocalPlan, snap: Snapshot) -> None:
    """One line per component, in the order data flows: the endpoint, the algos, the event hook."""
    order = {"Endpoint": 0, "EventHook": 2}
    for component, progress in sorted(snap.components.items(), key=lambda item: order.get(item[0], 1)):
        if component == "Endpoint":
            line = f"accepted {progress.produced}"
        elif component == "EventHook":
            line = f"delivered {progress.consumed - progress.dead_letters}, dead letters {progress.dead_letters}"
        else:
            line = f"in {progress.consumed}, out {progress.produced}, dead letters {progress.dead_letters}"
        console.print(f"  {escape(component)}: {line}", highlight=False)


def _report_failures(console: Console, supervisor: Supervisor) -> None:
    for status in supervisor.statuses:
        if status.state == State.FAILED or (status.state != State.READY and status.reason):
            console.print(f"[red]{escape(status.spec.name)}: {escape(status.reason or status.state.value)}[/red]")
            for line in supervisor.tail(status, 10):
                console.print(f"    {line}", highlight=False, markup=False)
            console.print(f"    (full log: {status.log_path})", style="dim", highlight=False)
    for status in supervisor.statuses:
        if status.state not in (State.FAILED, State.READY) and not status.reason:
            console.print(f"[yellow]{escape(status.spec.name)}: not ready ({status.state.value})[/yellow]")


async def send_file(
    plan: LocalPlan, path_name: str | None, file: Path, console: Console | None = None
) -> dict[str, object]:
    """POST a file to an endpoint path of the running pipeline; returns the endpoint's JSON answer."""
    urls = {url.rsplit("/", 1)[1]: url for url in plan.endpoint_urls}
    if path_name is None:
        if len(urls) != 1:
            raise RunFailed(f"the pipeline has {len(urls)} endpoint paths; name one: --input PATH=FILE")
        path_name = next(iter(urls))
    if path_name not in urls:
        raise RunFailed(f"no endpoint path {path_name!r}; known: {', '.join(urls) or 'none'}")
    body = await asyncio.to_thread(file.read_bytes)
    return await post(urls[path_name], body, mimetypes.guess_type(file.name)[0], console, str(file))


async def post(
    url: str, body: bytes, content_type: str | None, console: Console | None, label: str
) -> dict[str, object]:
    headers = {"Content-Type": content_type or "application/octet-stream"}
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        text = await response.text()
        if response.status >= 300:
            raise RunFailed(f"POST {url} answered {response.status}: {text}")
        answer: dict[str, object] = json.loads(text) if text else {}
    if console is not None:
        console.print(f"sent {label} -> {url}: {answer}", highlight=False)
    return answer
