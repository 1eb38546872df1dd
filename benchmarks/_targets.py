"""Targets of the benchmarks, printed one per line in one format, and their summary at the end of `make bench`
(not a benchmark itself: `make bench` skips modules whose name starts with an underscore).

Each benchmark calls `report` for each figure that has a target (the issues' acceptance criteria). It prints

    target: <what> <measured> <goal> met|NOT met

and, when the environment names a file in `BENCH_TARGETS` (the Makefile's `bench` target does), appends the same
line to it. `python -m benchmarks._targets FILE` prints those lines again as the run's summary, with the count
of targets not met, so one look at the end of a long run says where the figures stand.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FILE_VARIABLE = "BENCH_TARGETS"


def line(what: str, measured: float | str, goal: str, met: bool) -> str:
    """The target line of one figure: `what` names it (no spaces), `goal` says the bound (e.g. `<=25ms`)."""
    return f"target: {what} {measured} {goal} {'met' if met else 'NOT met'}"


def report(what: str, measured: float | str, goal: str, met: bool) -> bool:
    """Print the target line of one figure (and append it to `$BENCH_TARGETS`); returns `met`."""
    text = line(what, measured, goal, met)
    print(text, flush=True)
    path = os.environ.get(FILE_VARIABLE)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(text + "\n")
    return met


def summary(path: Path) -> tuple[list[str], int]:
    """The target lines collected in `path`, and how many of them are not met."""
    lines = (
        [x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith("target: ")] if path.exists() else []
    )
    return lines, sum(1 for x in lines if x.endswith(" NOT met"))


def main(argv: list[str]) -> int:
    lines, missed = summary(Path(argv[0]))
    print("== targets")
    for text in lines:
        print(text)
    print(f"{len(lines) - missed} of {len(lines)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
