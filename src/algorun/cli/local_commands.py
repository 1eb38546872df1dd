"""Commands for running pipelines on one machine: run, send, tail, topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from algorun.cli import console as console_

KafkaOption = Annotated[
    str | None, typer.Option("--kafka", help="Run on this Kafka (host:port[,host:port]) instead of the local log.")
]
TlsOption = Annotated[bool, typer.Option("--kafka-tls", help="Connect to Kafka over TLS.")]
CaOption = Annotated[Path | None, typer.Option("--kafka-ca", help="CA bundle of the Kafka brokers' certificates.")]
AuthOption = Annotated[
    str, typer.Option("--kafka-auth", help="Client authentication: none, tls (mTLS), scram-sha-512 or plain.")
]
CertOption = Annotated[Path | None, typer.Option("--kafka-cert", help="Client certificate (mTLS).")]
KeyOption = Annotated[Path | None, typer.Option("--kafka-key", help="Client private key (mTLS).")]
UserOption = Annotated[str | None, typer.Option("--kafka-user", help="SASL user name.")]
PasswordOption = Annotated[
    str | None,
    typer.Option("--kafka-password", envvar="KAFKA_AUTH_PASSWORD", help="SASL password (or KAFKA_AUTH_PASSWORD)."),
]
StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="Where the local log, configs and logs live (default: .algorun next to the pipeline)."
    ),
]


def _kafka_settings(
    kafka: str | None,
    tls: bool,
    ca: Path | None,
    auth: str,
    cert: Path | None,
    key: Path | None,
    user: str | None,
    password: str | None,
) -> object | None:
    if kafka is None:
        return None
    from pydantic import SecretStr, ValidationError

    from algorun.api.enums import KafkaAuthType
    from algorun.bus import KafkaSettings

    try:
        return KafkaSettings(
            bootstrap_servers=kafka,
            tls=tls,
            ca_location=str(ca) if ca else None,
            auth_type=KafkaAuthType(auth),
            cert_location=str(cert) if cert else None,
            key_location=str(key) if key else None,
            username=user,
            password=SecretStr(password) if password else None,
        )
    except (ValidationError, ValueError) as exc:
        raise typer.BadParameter(str(exc).splitlines()[-1], param_hint="--kafka-*") from exc


def _parse_pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise typer.BadParameter(f"{value!r}: expected NAME=VALUE", param_hint=option)
        pairs[name] = rest
    return pairs


def run(
    files: Annotated[
        list[Path], typer.Argument(help="The pipeline YAML, then any Algo/DataConnector YAML it references.")
    ],
    state_dir: StateOption = None,
    algo: Annotated[
        list[str] | None,
        typer.Option("--algo", help='Replace an algo\'s entrypoint: NAME=COMMAND (NAME: "owner/name" or "name").'),
    ] = None,
    until_idle: Annotated[
        bool,
        typer.Option("--until-idle", help="Send the --input files, wait until everything has flowed through, exit."),
    ] = False,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", help="With --until-idle: a file to send, as PATH=FILE (or FILE if one path)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="The endpoint's HTTP port.")] = 18080,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="The endpoint's gRPC port.")] = 18282,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="The endpoint's metrics port.")] = 28080,
    connect: Annotated[
        str | None, typer.Option("--connect", help="Kafka Connect REST URL (for data connectors).")
    ] = None,
    web_console: Annotated[
        bool, typer.Option("--console/--no-console", help="Serve the web console (its URL is printed).")
    ] = True,
    console_port: Annotated[
        int, typer.Option("--console-port", help="The web console's port (a free one when it is taken).")
    ] = 18090,
    timeout: Annotated[float, typer.Option("--timeout", help="With --until-idle: seconds to wait for idle.")] = 300.0,
    kafka: KafkaOption = None,
    kafka_tls: TlsOption = False,
    kafka_ca: CaOption = None,
    kafka_auth: AuthOption = "none",
    kafka_cert: CertOption = None,
    kafka_key: KeyOption = None,
    kafka_user: UserOption = None,
    kafka_password: PasswordOption = None,
) -> None:
    """Run a pipeline on this machine: the endpoint, a runner per algo replica, the algos' servers and the hook
    runner, as supervised processes, on the embedded local log (or --kafka)."""
    from algorun.api import SpecError
    from algorun.local.plan import PlanError, Ports
    from algorun.local.runtime import RunFailed, RunOptions
    from algorun.local.runtime import run as run_pipeline

    console = console_.out()
    err = console_.err()
    parsed_inputs: list[tuple[str | None, Path]] = []
    for value in inputs or []:
        name, sep, file = value.partition("=")
        parsed_inputs.append((name, Path(file)) if sep else (None, Path(value)))
    for _, input_file in parsed_inputs:
        if not input_file.is_file():
            raise typer.BadParameter(f"{input_file}: no such file", param_hint="--input")
    options = RunOptions(
        files=files,
        state_dir=state_dir,
        kafka=_kafka_settings(
            kafka, kafka_tls, kafka_ca, kafka_auth, kafka_cert, kafka_key, kafka_user, kafka_password
        ),  # type: ignore[arg-type]
        connect_url=connect,
        algo_overrides=_parse_pairs(algo or [], "--algo"),
        until_idle=until_idle,
        inputs=parsed_inputs,
        idle_timeout=timeout,
        ports=Ports(http=port, grpc=grpc_port, metrics=metrics_port),
        console=web_console,
        console_port=console_port,
    )
    try:
        code = asyncio.run(run_pipeline(options, console))
    except SpecError as exc:
        for problem in exc.problems:
            console_.print_problems(err, [problem])
        code = 1
    except (PlanError, RunFailed) as exc:
        console_.print_error(err, str(exc))
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


def send(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline YAML (for the endpoint's URL).")],
    path: Annotated[str, typer.Argument(help="The endpoint path name.")],
    file: Annotated[str, typer.Argument(help="A file to send, or - for standard input.")] = "-",
    content_type: Annotated[
        str | None, typer.Option("--content-type", help="Default: the path's declared type.")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="The endpoint's base URL.")] = "http://127.0.0.1:18080",
) -> None:
    """Post data to a running pipeline's endpoint path and print the endpoint's answer."""
    from algorun.api import SpecError, load_pipeline
    from algorun.local.runtime import RunFailed, post

    try:
        _, topology = load_pipeline([pipeline])
    except SpecError as exc:
        for problem in exc.problems:
            console_.print_problems(console_.err(), [problem])
        raise typer.Exit(1) from exc
    declared = topology.spec.endpoint.path(path)
    if declared is None:
        known = ", ".join(p.name for p in topology.spec.endpoint.paths) or "none"
        raise typer.BadParameter(f"no endpoint path {path!r}; known: {known}", param_hint="PATH")
    body = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    target = f"{(url or '').rstrip('/')}/{topology.owner}/{topology.name}/{path}"
    try:
        answer = asyncio.run(post(target, body, content_type or declared.content_type, None, file))
    except (RunFailed, OSError) as exc:
        console_.print_error(console_.err(), str(exc))
        raise typer.Exit(1) from exc
    sys.stdout.write(json.dumps(answer) + "\n")


def _bus_target(state_dir: Path | None, pipeline: Path | None, kafka: str | None) -> str:
    from algorun.local.runtime import local_bus_url, state_dir_for

    if kafka:
        return f"kafka://{kafka}"
    if state_dir is None and pipeline is None:
        state_dir = Path(".algorun")
    directory = state_dir_for([pipeline], state_dir) if pipeline else state_dir
    assert directory is not None
    db = directory / "log.db"
    if not db.exists():
        raise typer.BadParameter(f"no local log at {db}; run the pipeline first or give --state-dir/--pipeline")
    return local_bus_url(directory)


def tail(
    topic: Annotated[str, typer.Argument(help="The topic to follow.")],
    state_dir: StateOption = None,
    pipeline: Annotated[
        Path | None, typer.Option("--pipeline", help="Use the local log next to this pipeline.")
    ] = None,
    kafka: KafkaOption = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning/--new", help="Start at the oldest message.")] = True,
    count: Annotated[int | None, typer.Option("--count", "-n", help="Stop after this many messages.")] = None,
    idle: Annotated[
        float | None, typer.Option("--idle", help="Stop after this many seconds without a message.")
    ] = None,
) -> None:
    """Follow a topic on the local log or Kafka, printing each message with its decoded headers."""
    from algorun.bus import open_bus

    target = _bus_target(state_dir, pipeline, kafka)

    async def follow() -> None:
        bus = open_bus(target)
        seen = 0
        quiet = 0.0
        try:
            async with bus.consumer(None, [topic], from_beginning=from_beginning) as consumer:
                while count is None or seen < count:
                    batch = await consumer.getmany(max_messages=100, max_wait=0.5)
                    if not batch:
                        quiet += 0.5
                        if idle is not None and quiet >= idle:
                            return
                        continue
                    quiet = 0.0
                    for message in batch:
                        sys.stdout.write(_format_message(message) + "\n")
                        seen += 1
                        if count is not None and seen >= count:
                            break
                    sys.stdout.flush()
        finally:
            await bus.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(follow())


def _format_message(message: object) -> str:
    from algorun.bus import Message

    assert isinstance(message, Message)
    headers = {k: v.decode("utf-8", errors="replace") for k, v in message.headers}
    try:
        value: object = message.value.decode("utf-8")
    except UnicodeDecodeError:
        value = {"base64": __import__("base64").b64encode(message.value).decode()}
    return json.dumps(
        {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key.decode("utf-8", errors="replace") if message.key else None,
            "headers": headers,
            "value": value,
        },
        ensure_ascii=False,
    )


def topics(
    state_dir: StateOption = None,
    pipeline: Annotated[
        Path | None, typer.Option("--pipeline", help="Use the local log next to this pipeline.")
    ] = None,
    kafka: KafkaOption = None,
) -> None:
    """List the topics on the local log or Kafka, with partitions and message counts."""
    from rich.table import Table

    from algorun.bus import open_bus

    target = _bus_target(state_dir, pipeline, kafka)

    async def listing() -> list[tuple[str, int, int]]:
        bus = open_bus(target)
        try:
            found = await bus.list_topics()
            names = sorted(n for n in found if not n.startswith("__"))
            ends = await bus.lag("algorun-local-view", names) if names else {}
            counts: dict[str, int] = {}
            for tp, lag in ends.items():
                counts[tp.topic] = counts.get(tp.topic, 0) + lag.end - lag.start
            return [(n, found[n].partitions, counts.get(n, 0)) for n in names]
        finally:
            await bus.close()

    table = Table()
    table.add_column("topic", overflow="fold")  # a topic name is never cut: users copy it into `algorun tail`
    table.add_column("partitions", justify="right")
    table.add_column("messages", justify="right")
    for name, partitions, messages in asyncio.run(listing()):
        table.add_row(console_.escape(name), str(partitions), str(messages))
    console_.out().print(table)


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(send)
    app.command()(tail)
    app.command()(topics)
