"""What a run writes: one `Write` per produced message, and the builders shared by every path.

A `Write` remembers, beside the record itself, what its acknowledgement counts in the metrics (`output`,
`data_size`, `kind`); `kind` also decides what replaces a write too large for the broker (`outbox.Oversize`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from algorun.bus import contract
from algorun.bus.types import Headers, Message, OutRecord
from algorun.runner.provenance import Inbound, dead_letter_headers


class WriteKind(StrEnum):
    """What a write is; its value is the `status` label of the output metrics."""

    OUTPUT = "ok"
    RETRY = "retry"
    DEAD_LETTER = "dlq"


class Write(NamedTuple):
    """One message a run writes: where, what, and what its acknowledgement counts in the metrics.

    A NamedTuple, so the inline path builds one per message with `tuple.__new__` (in C): the per-message cost of
    a dataclass's `__init__` shows in `benchmarks/runner.py`."""

    topic: str
    value: bytes
    key: bytes
    headers: Headers
    output: str
    data_size: int
    kind: WriteKind


new_write = tuple.__new__
"""`new_write(Write, (...))`: a `Write` without the Python-level `__new__` of a NamedTuple."""


def records(writes: list[Write]) -> list[OutRecord]:
    """The producer's records of `writes`, in order."""
    return [(w.topic, w.value, w.key, w.headers, None) for w in writes]


def run_flag(x: Message, trigger: Message) -> str:
    """Parts of a run keep `run=false` on retry and dead-letter copies, so a replay stages them again."""
    return "true" if x is trigger else "false"


def dead_letter_write(
    topic: str, component: str, m: Message, inb: Inbound, error: str, error_type: str, run: str | None = None
) -> Write:
    """The dead letter of input `m` to `topic`: its value and headers, plus where it came from and why it failed."""
    headers = dead_letter_headers(m, inb, error, error_type, component)
    if run is not None:
        headers = contract.replace(headers, {contract.RUN: run})
    return Write(topic, m.value, contract.message_key(inb.trace_id), headers, "", len(m.value), WriteKind.DEAD_LETTER)
