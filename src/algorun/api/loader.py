"""Reading pipeline YAML with positions, so every problem can point at `file:line:column`.

A file may hold several documents (a PipelineDeployment and the Algo/DataConnector templates it references).
Syntax errors become problems with the position YAML reports; duplicate keys, which YAML silently resolves to the
last one, are reported too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from algorun.api.problems import PathPart, Problem, format_path


@dataclass
class Document:
    """One YAML document: its data, where it came from, and the position of every path in it."""

    data: Any
    file: str
    index: int = 0
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: str) -> tuple[int | None, int | None]:
        """Line and column of `path`, or of its nearest ancestor that has one."""
        candidate = path
        while candidate:
            if candidate in self.positions:
                return self.positions[candidate]
            cut = max(candidate.rfind("."), candidate.rfind("["))
            candidate = candidate[:cut] if cut > 0 else ""
        return self.positions.get("", (None, None))

    def locate(self, problem: Problem) -> Problem:
        line, column = self.position(problem.path)
        from dataclasses import replace

        return replace(problem, file=self.file, line=line, column=column)


class LoadError(Exception):
    """A file could not be read or parsed; `problems` says where."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.located() for p in problems))
        self.problems = problems


def _walk(
    node: yaml.Node,
    path: list[PathPart],
    positions: dict[str, tuple[int, int]],
    dups: list[Problem],
    file: str,
) -> None:
    key = format_path(path)
    positions.setdefault(key, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            name = str(key_node.value)
            if name in seen:
                dups.append(
                    Problem(
                        format_path([*path, name]),
                        "duplicate key; YAML would silently keep only the last one",
                        file=file,
                        line=key_node.start_mark.line + 1,
                        column=key_node.start_mark.column + 1,
                    )
                )
            seen.add(name)
            # A key's own position is where a user looks for it (the value may start lines later).
            positions.setdefault(
                format_path([*path, name]), (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            )
            _walk(value_node, [*path, name], positions, dups, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, [*path, i], positions, dups, file)


def parse_yaml(text: str, file: str = "<string>") -> list[Document]:
    """Documents of a YAML text; raises LoadError with file, line and column on a syntax error."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            message += f" ({exc.context})"
        raise LoadError(
            [
                Problem(
                    "",
                    message,
                    file=file,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            ]
        ) from exc
    except yaml.reader.ReaderError as exc:
        # Raised for characters YAML forbids; it knows only the character offset.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = f"YAML error: character {exc.character!r} is not allowed in YAML"
        raise LoadError([Problem("", message, file=file, line=line, column=column)]) from exc
    except yaml.YAMLError as exc:
        raise LoadError([Problem("", f"YAML error: {exc}", file=file)]) from exc
    documents: list[Document] = []
    duplicates: list[Problem] = []
    for index, node in enumerate(n for n in nodes if n is not None):
        positions: dict[str, tuple[int, int]] = {}
        _walk(node, [], positions, duplicates, file)
        loader = yaml.SafeLoader("")
        try:
            data = loader.construct_document(node)
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark
            raise LoadError(
                [Problem("", f"YAML error: {exc.problem}", file=file, line=mark.line + 1 if mark else None)]
            ) from exc
        finally:
            loader.dispose()
        documents.append(Document(data=data, file=file, index=index, positions=positions))
    if duplicates:
        raise LoadError(duplicates)
    return documents


def load_files(paths: Iterable[str | Path]) -> list[Document]:
    """Documents of every file, in order; raises LoadError listing every unreadable or malformed file."""
    documents: list[Document] = []
    problems: list[Problem] = []
    for path in paths:
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(Problem("", "no such file", file=name))
            continue
        except IsADirectoryError:
            problems.append(Problem("", "is a directory, not a YAML file", file=name))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem("", f"cannot read: {exc}", file=name))
            continue
        try:
            documents.extend(parse_yaml(text, name))
        except LoadError as exc:
            problems.extend(exc.problems)
    if problems:
        raise LoadError(problems)
    return documents
