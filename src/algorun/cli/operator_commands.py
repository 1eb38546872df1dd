"""`algorun operator` (run the Kubernetes operator) and `algorun render` (print what it would apply).

kopf is imported only inside `operator` (it takes most of a second to import).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from algorun.cli import console as console_

if TYPE_CHECKING:
    from algorun.api.resources import PipelineDeployment
    from algorun.api.topology import Topology
    from algorun.operator.apis import ServedApis
    from algorun.operator.settings import OperatorOptions


def operator(
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Kubeconfig file; default $KUBECONFIG, else the in-cluster service account."),
    ] = None,
    standalone: Annotated[bool, typer.Option("--standalone", help="No peering: the only instance.")] = False,
    peering: Annotated[str, typer.Option("--peering", help="kopf peering name (one active instance).")] = "algorun",
    priority: Annotated[
        int | None,
        typer.Option("--priority", help="Peering priority; the highest is active (default: derived from POD_NAME)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the pipeline operator, configured by the chart's environment variables (see docs/operator.md)."""
    import asyncio
    import logging

    from algorun.operator.service import Operator
    from algorun.operator.settings import OperatorOptions
    from algorun.settings import SettingsError

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = OperatorOptions.from_env()
    except SettingsError as exc:
        console_.print_error(console_.err(), str(exc), prefix="invalid operator settings: ")
        raise typer.Exit(2) from exc
    asyncio.run(Operator(settings, kubeconfig).run(standalone=standalone, peering_name=peering, priority=priority))


def render(
    files: Annotated[
        list[Path], typer.Argument(help="The PipelineDeployment YAML (and any Algo/DataConnector templates).")
    ],
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace of the PipelineDeployment when its metadata has none.")
    ] = "default",
    api_versions: Annotated[
        list[str] | None,
        typer.Option(
            "--api-versions",
            help="GROUP/VERSION the target cluster serves (repeatable), e.g. kafka.strimzi.io/v1beta2 for Strimzi "
            "0.x. Default: a current Strimzi (kafka.strimzi.io/v1).",
        ),
    ] = None,
) -> None:
    """Print the manifests the operator would apply for a pipeline (for review and GitOps).

    Settings come from the same environment variables as the operator. Offline, the copies of the Kafka
    secrets are left out (their data lives in the cluster) and no owner references are set. The Strimzi objects
    are written in the version the operator would choose on a cluster serving `--api-versions`.
    """
    from algorun.api.documents import SpecError, load_pipeline
    from algorun.operator.apis import STRIMZI_MISSING, assumed
    from algorun.operator.settings import OperatorOptions
    from algorun.settings import SettingsError

    err = console_.err()
    try:
        apis = assumed(api_versions or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--api-versions") from exc
    if apis.strimzi_version is None:
        console_.print_error(err, STRIMZI_MISSING.removesuffix("; nothing was changed"))
        raise typer.Exit(1)
    try:
        settings = OperatorOptions.from_env()
        pipeline, topology = load_pipeline(files)
    except SpecError as exc:
        for problem in exc.problems:
            console_.print_problems(err, [problem])
        raise typer.Exit(1) from exc
    except SettingsError as exc:
        console_.print_error(err, str(exc), prefix="invalid operator settings: ")
        raise typer.Exit(2) from exc
    sys.stdout.write(render_offline(pipeline, topology, settings, namespace, apis))


def render_offline(
    pipeline: PipelineDeployment,
    topology: Topology,
    settings: OperatorOptions,
    namespace: str,
    apis: ServedApis | None = None,
) -> str:
    """What `algorun render` prints for a cluster serving `apis` (default: a current Strimzi). The storage
    secret is assumed to be the configured one."""
    from algorun.operator.apis import CURRENT
    from algorun.operator.render import ClusterFacts
    from algorun.operator.render import render as render_pipeline

    storage = None
    if settings.storage:
        spec = pipeline.spec
        storage = settings.storage_secret_candidates(spec.deployment_owner, spec.deployment_name)[0]
    strimzi = (apis or CURRENT).strimzi_version
    if strimzi is None:
        raise ValueError("the cluster serves no Strimzi API version the operator can write")
    facts = ClusterFacts(offline=True, storage_secret=storage, strimzi_version=strimzi)
    return dump(render_pipeline(pipeline, topology, settings, facts, namespace).objects)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the JSON configs) as literal blocks, so manifests stay readable and diffable;
    no YAML anchors, so every document stands alone."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML, keys in the order render wrote them."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def register(app: typer.Typer) -> None:
    app.command()(operator)
    app.command()(render)
