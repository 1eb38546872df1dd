"""The consoles every command prints through.

User text (file names, component names, problem messages, process output) is printed literally: emoji codes are
off, so ``pipeline.yaml:100:5`` is not turned into a picture, and markup in the text is escaped, so a name like
``[bold]`` is shown as written. Only the styles this module adds are interpreted.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape

from algorun.api.problems import Problem

__all__ = ["err", "escape", "out", "print_error", "print_problems"]


def out() -> Console:
    """Standard output."""
    return Console(emoji=False, highlight=False, soft_wrap=True)


def err() -> Console:
    """Standard error."""
    return Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)


def print_error(console: Console, text: str, prefix: str = "") -> None:
    """One error line in red; ``prefix`` is trusted markup, ``text`` is user text."""
    console.print(f"[red]{prefix}{escape(text)}[/red]")


def print_problems(console: Console, problems: Iterable[Problem]) -> None:
    """Each problem on its own line, with its position: warnings yellow, errors red."""
    for problem in problems:
        style = "yellow" if problem.severity == "warning" else "red"
        console.print(f"[{style}]{escape(problem.located())}[/{style}]")
