"""The inline path: the common message run while its fetched batch is dispatched, with no task, coroutine or
semaphore per message.

It takes a first attempt of an embedded, `run=true` message with nothing staged for its trace, when the executor
never waits (a sync python function: `executors.base.InlineExecutor`). Runs go through one loop per
fetched batch (`InlinePath.run`: its `_loop` is the runner's hottest code, kept as one function so a message costs
no call but the algo's), and a plain run's write joins the batch's `PendingBatch` as a bare record. Inputs and
algo durations are counted per batch (`flush_counts`). Whatever the loop declines goes to the lane's general path
with what the loop already did (`Handover`). `benchmarks/runner.py` measures this path against a plain
confluent-kafka loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import NamedTuple

from algorun.api.configs import RunnerConfig, RunnerOutput
from algorun.bus import contract
from algorun.bus.types import Message
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.model import AlgoFailure, Output, Part, Request
from algorun.runner.outbox import Outbox, PendingBatch
from algorun.runner.progress import Progress
from algorun.runner.sources import Source
from algorun.runner.staging import Staging
from algorun.runner.writes import Write, WriteKind, new_write
from algorun.telemetry.logs import TRACE_ID as trace_var
from algorun.telemetry.logs import TraceSlot

_FILE_REFERENCE = contract.MessageDataType.FILE_REFERENCE.value.encode()
_EMBEDDED = contract.MessageDataType.EMBEDDED
_OUTPUT = WriteKind.OUTPUT
_TRUE = contract.RUN_TRUE_RAW
_NOT_INHERITED = contract.NOT_INHERITED
# The plain layout's names, by position (`contract.PLAIN_LAYOUT`), and the names read from any other layout.
_P0, _P1, _P2, _P3, _P4 = contract.PLAIN_LAYOUT
_TRACE_ID, _RUN, _CONTENT_TYPE = contract.TRACE_ID, contract.RUN, contract.CONTENT_TYPE
_MESSAGE_DATA_TYPE, _TRACEPARENT = contract.MESSAGE_DATA_TYPE, contract.TRACEPARENT
_monotonic = time.monotonic


class Ran(NamedTuple):
    """The inline path ran the algo and it succeeded, but an output is over the claim check's threshold: the
    general path uploads it (asynchronously) and writes the reference, without running the algo again."""

    outputs: list[Output]


Handover = AlgoFailure | Ran
"""What the inline path hands the general path: the failure of the run it made (the retry plan goes on from
there), or its outputs."""


class InlinePath:
    """Runs messages inline through the executor's sync runner (`run_sync`), or its payload-only form
    (`run_payload`) when the executor has one."""

    def __init__(
        self,
        config: RunnerConfig,
        sources: dict[str, Source],
        staging: Staging,
        outbox: Outbox,
        progress: Progress,
        metrics: RunnerMetrics,
        *,
        run_sync: Callable[[Request], list[Output]],
        run_payload: Callable[[bytes], bytes | list[Output]] | None,
        offload_above: int | None,
    ) -> None:
        self._config = config
        self._sources = sources
        self._staging = staging
        self._outbox = outbox
        self._progress = progress
        self._metrics = metrics
        self._run_sync = run_sync
        self._run_payload = run_payload
        self._offload_above = offload_above
        # One comparison per output: without storage, no size sends a run to the general path.
        self._limit = offload_above if offload_above is not None else sys.maxsize
        self._outputs: dict[str, RunnerOutput] = {o.name: o for o in config.outputs}
        first = config.outputs[0] if config.outputs else None
        self._first_output = first if first is not None and first.topic is not None else None
        self._first_content_type = (  # what `contract.output` encodes per message for the plain one, once
            first.content_type.encode() if first is not None and first.content_type is not None else None
        )
        self._algo_seconds: list[float] = []  # observed per batch

    def run(self, messages: list[Message], start: int, batch: PendingBatch | None) -> tuple[int, Handover | None]:
        """Run `messages[start:]` in order until a message is not for this path.

        Returns the index of that message (`len(messages)` when every one ran) and what it hands over: None (not
        for this path, nothing was done: the lane's general path takes it), an AlgoFailure (the algo ran and
        failed), or `Ran` (the algo ran and an output is to be claim-checked). Inputs are counted here in every
        case. A bug (an unexpected exception) is logged for its message, which is left unfinished (never
        committed), and the loop goes on with the next.

        Writes: with `batch` (a dispatch outside a transaction) they join it in run order, a plain run as a bare
        record; without, each run goes to `Outbox.write` on its own.
        """
        slot = TraceSlot()  # log lines of each run carry its traceID
        token = trace_var.set(slot)
        try:
            return self._loop(messages, start, batch, slot)
        finally:
            slot.trace_id = None
            trace_var.reset(token)

    def _loop(
        self, messages: list[Message], start: int, batch: PendingBatch | None, slot: TraceSlot
    ) -> tuple[int, Handover | None]:
        """`run`'s loop. Per message, only what the message needs."""
        sources, staging, secs, write = self._sources, self._staging, self._algo_seconds, self._outbox.write
        run_payload, run_sync = self._run_payload, self._run_sync
        cfg, limit, first_ct = self._first_output, self._limit, self._first_content_type
        offloading = self._offload_above is not None
        first_topic = cfg.topic if cfg is not None and cfg.topic is not None else ""
        plain = batch if batch is not None and not batch.runs else None  # where plain runs go, while they may
        i, n = start, len(messages)
        while i < n:
            m = messages[i]
            slot.trace_id = None  # until this message's is known (an error logged meanwhile has none)
            try:
                source = sources.get(m.topic)
                if source is None or source.file_reference:
                    return i, None  # retry topics are not sources: their copies always take the general path
                # The plain layout (`contract.PLAIN_LAYOUT`) is read in place; any other through a dict.
                h = m.headers
                hd: dict[str, bytes] | None = None
                trace: bytes | None
                run: bytes | None
                inherited_ct: bytes | None
                data_type: bytes | None
                parent: bytes | None
                if (
                    len(h) == 5
                    and h[0][0] == _P0
                    and h[1][0] == _P1
                    and h[2][0] == _P2
                    and h[3][0] == _P3
                    and h[4][0] == _P4
                ):
                    trace, run, inherited_ct, data_type, parent = h[0][1], h[1][1], h[2][1], h[3][1], h[4][1]
                else:
                    hd = dict(h)  # bytes values, the last of a repeated name winning (Kafka's rule)
                    get = hd.get
                    trace, run, inherited_ct = get(_TRACE_ID), get(_RUN), get(_CONTENT_TYPE)
                    data_type, parent = get(_MESSAGE_DATA_TYPE), get(_TRACEPARENT)
                if data_type == _FILE_REFERENCE:
                    return i, None
                if run is not None and run not in _TRUE:
                    return i, None
                if trace:
                    trace_id = trace.decode("utf-8", "replace")
                    if not trace.isascii():  # maybe not UTF-8: the key and header are the decoded id, encoded
                        trace = trace_id.encode()
                else:
                    trace_id = contract.new_trace_id()
                    trace = trace_id.encode()
                if staging.count and staging.has((source.input.name, trace_id)):
                    return i, None
                value = m.value
                source.read += 1
                source.read_bytes += len(value)
                slot.trace_id = trace_id
                started = _monotonic()
                try:
                    if run_payload is not None:
                        result = run_payload(value)
                    else:
                        result = run_sync(self._request(m, source, trace_id, dict(h) if hd is None else hd))
                except AlgoFailure as e:
                    return i, e
                finally:
                    secs.append(_monotonic() - started)  # observed with the batch (`flush_counts`)
                source.ok += 1
                if type(result) is not bytes:  # the sync runner's outputs
                    outputs: list[Output] = result  # type: ignore[assignment]
                    if offloading and any(len(o.payload()) > limit for o in outputs):
                        return i, Ran(outputs)
                    writes = self._embedded_writes(m, trace_id, outputs, dict(h) if hd is None else hd)
                elif cfg is None:  # the payload runner's one output: for the first declared output, if piped
                    writes = []
                elif len(result) > limit:
                    return i, Ran([Output(cfg.name, result)])
                else:
                    ct = first_ct if first_ct is not None else inherited_ct
                    if (
                        plain is not None
                        and ct is not None
                        and ct.isascii()
                        and (hd is None or hd.keys() <= _NOT_INHERITED)
                    ):
                        # `contract.output` of this plain message: nothing inherited, the content type as is
                        traceparent = contract.child_traceparent_raw(trace_id, parent, trace)
                        headers = contract.plain_output(trace, ct, traceparent)
                        plain.records.append((first_topic, result, trace, headers, None))
                        plain.plain.append(m)
                        plain.plain_started.append(started)
                        plain.plain_bytes += len(result)
                        i += 1
                        continue
                    writes = [self._first_write(m, dict(h) if hd is None else hd, trace_id, trace, cfg, result)]
                write([m], started, writes)
                if plain is not None and plain.runs:
                    plain = None  # a run of another kind joined the batch: the later ones follow it
            except Exception:
                self._progress.internal_error(m, self._metrics)
            i += 1
        return i, None

    def flush_counts(self) -> None:
        """The inputs and algo durations counted since the last flush, into the metrics."""
        metrics = self._metrics
        if self._algo_seconds:
            metrics.algo_duration.observe_all(self._algo_seconds)
            self._algo_seconds.clear()
        for source in self._sources.values():
            if source.read:
                name = source.input.name
                metrics.input_bytes(name, "ok", source.read_bytes, source.read_bytes)
                metrics.message(name, "ok", source.ok)
                source.read = source.read_bytes = source.ok = 0

    def _request(self, m: Message, source: Source, trace_id: str, hd: dict[str, bytes]) -> Request:
        """The Request of an inline run, for executors that want more than the payload."""
        algo_input = source.input
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in hd.items()}
        content_type = headers.get(contract.CONTENT_TYPE) or (
            algo_input.content_types[0] if algo_input.content_types else None
        )
        return Request(
            trace_id=trace_id,
            input=algo_input,
            parts=[Part(m.value, content_type, headers.get(contract.FILE_NAME))],
            parameters=self._config.parameters,
            endpoint_params=headers.get(contract.ENDPOINT_PARAMS),
            headers=headers,
        )

    @staticmethod
    def _first_write(
        m: Message, hd: dict[str, bytes], trace_id: str, trace: bytes, cfg: RunnerOutput, data: bytes
    ) -> Write:
        """`_embedded_writes` of a single `Output(cfg.name, data)`, without building it. `trace`: `trace_id`
        encoded (the key, and the output's traceID header)."""
        headers = contract.output(
            m.headers, trace_id=trace_id, data_type=_EMBEDDED, content_type=cfg.content_type, by_name=hd, trace=trace
        )
        assert cfg.topic is not None
        return new_write(Write, (cfg.topic, data, trace, headers, cfg.name, len(data), _OUTPUT))

    def _embedded_writes(
        self, m: Message, trace_id: str, outputs: list[Output], by_name: dict[str, bytes] | None = None
    ) -> list[Write]:
        """The writes of `outputs` when every one is embedded (no claim check to wait for)."""
        writes: list[Write] = []
        key = contract.message_key(trace_id)
        for out in outputs:
            cfg = self._outputs.get(out.name)
            if cfg is None or cfg.topic is None:
                continue  # not piped anywhere
            data = out.payload()
            headers = contract.output(
                m.headers,
                trace_id=trace_id,
                data_type=_EMBEDDED,
                content_type=out.content_type or cfg.content_type,
                file_name=out.file_name,
                by_name=by_name,
            )
            writes.append(Write(cfg.topic, data, key, headers, out.name, len(data), _OUTPUT))
        return writes
