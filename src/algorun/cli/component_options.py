"""What the data-plane component commands (`algorun endpoint`, `algorun hook`) share: reading the component
config (the JSON the operator mounts, or a pipeline YAML for convenience) and choosing the bus.

The bus is `--bus URL` (or the ALGORUN_BUS variable, which local mode sets): `kafka://host:port` or
`local:///path/log.db`; without it, Kafka from the original runtime's variables (KAFKA_BROKERS, KAFKA_TLS,
KAFKA_AUTH_*), falling back to the brokers named in the config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from algorun.bus import KafkaSettings

ConfigOption = Annotated[
    Path,
    typer.Option("--config", exists=True, dir_okay=False, help="Component config JSON, or a pipeline YAML file."),
]
BusOption = Annotated[
    str | None,
    typer.Option(
        "--bus",
        envvar="ALGORUN_BUS",
        help="kafka://host:port or local:///path/log.db (default: KAFKA_BROKERS / the config).",
    ),
]
LogLevelOption = Annotated[str | None, typer.Option("--log-level", help="debug, info, warning or error.")]


def read_config(path: Path) -> tuple[dict[str, Any] | None, Any]:
    """(component config JSON, or None) and the topology when `path` is a pipeline YAML."""
    text = path.read_text()
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            return json.loads(text), None
        except json.JSONDecodeError as e:
            raise typer.BadParameter(f"{path}: not valid JSON: {e.msg} (line {e.lineno})") from e
    from algorun.api import SpecError, load_pipeline

    try:
        _, topology = load_pipeline([path])
    except SpecError as e:
        raise typer.BadParameter(f"{path}: {e}") from e
    return None, topology


def bus_target(bus: str | None, brokers: str | None) -> str | KafkaSettings:
    from algorun.bus import ConfigError, KafkaSettings

    if bus and bus.startswith("local:"):
        return bus
    env = dict(os.environ)
    if bus:
        if not bus.startswith("kafka://"):
            raise typer.BadParameter("--bus: use kafka://host:port or local:///path/log.db")
        env["KAFKA_BROKERS"] = bus.split("://", 1)[1]
    elif not env.get("KAFKA_BROKERS") and brokers:
        env["KAFKA_BROKERS"] = brokers
    try:
        return KafkaSettings.from_env(env)
    except ConfigError as e:
        raise typer.BadParameter(str(e)) from e


GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic collector's thresholds for a long-running component (CPython's defaults: 700, 10, 10)."""


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a component that moves tens of thousands of messages a second.

    Per-message objects (headers, tuples, write records) are acyclic and freed by reference counting, yet each
    container allocation counts toward a collection: with the default threshold the collector ran every few dozen
    messages and walked every object alive, batches in flight included. Objects alive after startup (modules,
    configuration) are frozen out of its sight; collections run every 50,000 allocations instead of 700.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_uvloop(coro: Any) -> Any:
    """Run a component's main coroutine on uvloop, with the collector tuned for it (`tune_gc`)."""
    import uvloop

    tune_gc()
    return uvloop.run(coro)
