"""Round order for the benchmarks that compare algorun with a raw client in interleaved rounds (not a benchmark
itself: `make bench` skips modules whose name starts with an underscore).

A run right after another one, or right after its topics were created, finds the broker still busy with that
work (its collections, segment rolls, the deletion of the last round's topics). With a fixed order within each
round, the same side always paid for it: in a scratch run of per-message produce on 4 partitions, the median of
the per-round ratios was 0.85 with raw first and 1.02 with algorun first. So the order rotates from round to
round, and the default round counts are multiples of the number of sides compared.
"""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T")


def rotated(steps: list[_T], round_index: int) -> list[_T]:
    """`steps` starting at a different one each round: over `len(steps)` rounds, each takes each place once."""
    by = round_index % len(steps)
    return steps[by:] + steps[:by]
