"""Path-qualified problems: what validation reports, all at once, instead of raising on the first."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

PathPart = str | int
Severity = Literal["error", "warning"]


def format_path(parts: Sequence[PathPart]) -> str:
    """`("spec", "pipes", 2, "destName")` -> `spec.pipes[2].destName`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def quoted(values: Iterable[object]) -> str:
    """`"a", "b"`: how messages list the names a user could have meant."""
    return ", ".join(f'"{v}"' for v in values)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, where it is, and (when known) the file position."""

    path: str
    message: str
    severity: Severity = "error"
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def located(self) -> str:
        """`file:line:column: path: message`, as far as the position is known."""
        where = ":".join(str(x) for x in (self.file, self.line, self.column) if x is not None)
        prefix = f"{where}: " if where else ""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{tag}{self}"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Problems:
    """An accumulator with a path prefix, so nested checks write relative paths."""

    items: list[Problem] = field(default_factory=list)

    def add(self, path: Sequence[PathPart], message: str, severity: Severity = "error") -> None:
        self.items.append(Problem(format_path(path), message, severity))

    def warn(self, path: Sequence[PathPart], message: str) -> None:
        self.add(path, message, "warning")

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]


def _all_field_names(models: Iterable[type[BaseModel]]) -> list[str]:
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    stack = list(models)
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
            for arg in _model_args(info.annotation):
                stack.append(arg)
    return sorted(names)


def _model_args(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_model_args(arg))
    return found


def from_validation_error(
    error: ValidationError, prefix: Sequence[PathPart] = (), known_models: Iterable[type[BaseModel]] = ()
) -> list[Problem]:
    """Pydantic's errors rewritten as path-qualified problems a user can act on."""
    vocabulary = _all_field_names(known_models)
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        loc = [*prefix, *(p for p in err["loc"] if not (isinstance(p, str) and _is_internal(p)))]
        kind = err["type"]
        value = err.get("input")
        if kind == "missing":
            message = "required field is missing"
        elif kind == "extra_forbidden":
            unknown = str(loc[-1]) if loc else ""
            close = difflib.get_close_matches(unknown, vocabulary, n=1)
            message = "unknown field" + (f'; did you mean "{close[0]}"?' if close else "")
        elif kind == "enum":
            expected = str(err.get("ctx", {}).get("expected", "")).replace("'", '"')
            message = f'"{value}" is not one of {expected}'
        elif kind == "literal_error":
            expected = str(err.get("ctx", {}).get("expected", "")).replace("'", '"')
            message = f'"{value}" is not {expected}'
        elif kind == "value_error":
            message = str(err.get("ctx", {}).get("error", err["msg"]))
        else:
            message = err["msg"][0].lower() + err["msg"][1:] if err["msg"] else kind
            if value is not None and kind.endswith(("_type", "_parsing")):
                message += f' (got "{value}")'
        problems.append(Problem(format_path(loc), message))
    return _dedupe(problems)


def _is_internal(part: str) -> bool:
    # pydantic adds validator and union-member names to locations ("function-before[...]", "int", "str").
    return "[" in part or part in {"int", "str", "float", "bool"}


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


def with_position(problem: Problem, file: str | None, line: int | None, column: int | None) -> Problem:
    return replace(problem, file=file, line=line, column=column)
