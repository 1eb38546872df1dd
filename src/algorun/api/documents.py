"""From YAML documents to typed, validated algo.run resources, collecting every problem with its position."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from algorun.api.loader import Document, LoadError, load_files, parse_yaml
from algorun.api.problems import Problem, from_validation_error
from algorun.api.resources import API_VERSION, KINDS, Algo, DataConnector, PipelineDeployment, Resource
from algorun.api.topology import Catalog, Resolver, Topology, build_topology
from algorun.api.validation import validate_spec


@dataclass
class Checked:
    """A parsed document: the resource (None when it could not be typed) and its problems."""

    document: Document
    resource: Resource | None
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Report:
    """The outcome of checking a set of documents together (templates resolve references across files)."""

    items: list[Checked]
    load_problems: list[Problem] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        return [*self.load_problems, *(p for item in self.items for p in item.problems)]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def pipelines(self) -> list[PipelineDeployment]:
        return [i.resource for i in self.items if isinstance(i.resource, PipelineDeployment)]

    def catalog(self) -> Catalog:
        """The Algo and DataConnector documents among the checked ones, as the resolver of their references."""
        return Catalog(
            algos=[i.resource for i in self.items if isinstance(i.resource, Algo)],
            connectors=[i.resource for i in self.items if isinstance(i.resource, DataConnector)],
            documents=True,
        )


_MODELS = tuple(KINDS.values())


def parse_resource(document: Document) -> Checked:
    """Type one document as Algo, DataConnector or PipelineDeployment."""
    data = document.data
    if not isinstance(data, dict):
        problem = Problem("", "a document must be a mapping with apiVersion, kind, metadata and spec")
        return Checked(document, None, [document.locate(problem)])
    kind = data.get("kind")
    problems: list[Problem] = []
    if not isinstance(kind, str) or kind not in KINDS:
        known = ", ".join(KINDS)
        message = "required field is missing" if kind is None else f'unknown kind "{kind}"'
        problems.append(Problem("kind", f"{message}; expected one of {known}"))
    api_version = data.get("apiVersion")
    if api_version != API_VERSION:
        message = "required field is missing" if api_version is None else f'"{api_version}" is not supported'
        problems.append(Problem("apiVersion", f"{message}; expected {API_VERSION}"))
    if problems:
        return Checked(document, None, [document.locate(p) for p in problems])
    model = KINDS[str(kind)]
    try:
        resource = model.model_validate(data)
    except ValidationError as exc:
        found = from_validation_error(exc, known_models=_MODELS)
        return Checked(document, None, [document.locate(p) for p in found])
    return Checked(document, resource)


def check_documents(documents: Sequence[Document], resolver: Resolver | None = None) -> Report:
    """Type every document, then validate each pipeline against the templates found among them.

    References resolve against `resolver` when given, else against the Algo/DataConnector documents present: a
    reference none of them matches is an error at the reference's path, saying how to give the template.
    """
    report = Report([parse_resource(d) for d in documents])
    if resolver is None:
        resolver = report.catalog()
    for item in report.items:
        if isinstance(item.resource, PipelineDeployment):
            found = validate_spec(item.resource.spec, resolver)
            for problem in found:
                item.problems.append(item.document.locate(problem))
    return report


def check_files(paths: Iterable[str | Path], resolver: Resolver | None = None) -> Report:
    """Load and check files; unreadable or malformed files become problems in the report."""
    try:
        documents = load_files(paths)
    except LoadError as exc:
        return Report([], load_problems=exc.problems)
    return check_documents(documents, resolver)


def check_text(text: str, file: str = "<string>", resolver: Resolver | None = None) -> Report:
    try:
        documents = parse_yaml(text, file)
    except LoadError as exc:
        return Report([], load_problems=exc.problems)
    return check_documents(documents, resolver)


class SpecError(Exception):
    """A pipeline could not be loaded; `problems` lists everything wrong, with positions."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(p.located() for p in problems))
        self.problems = problems


def load_pipeline(paths: Iterable[str | Path], resolver: Resolver | None = None) -> tuple[PipelineDeployment, Topology]:
    """The one pipeline among `paths` (with its templates), resolved; raises SpecError when it is not valid."""
    report = check_files(paths, resolver)
    if not report.ok:
        raise SpecError(report.errors)
    pipelines = report.pipelines()
    if len(pipelines) != 1:
        found = f"{len(pipelines)} PipelineDeployments" if pipelines else "no PipelineDeployment"
        raise SpecError([Problem("", f"expected exactly one PipelineDeployment among the files, found {found}")])
    pipeline = pipelines[0]
    return pipeline, build_topology(pipeline.spec, resolver or report.catalog())
