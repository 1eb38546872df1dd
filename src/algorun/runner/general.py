"""The general path: one message in, its run's writes out to the `Outbox`, for everything the inline path does
not take (staged parts, claim checks, retry copies, a failure, an executor that waits).

Failures go through `retry.plan`: in place (Simple: only that lane waits), to the step's retry topic
(RetryTopics: a copy of every part, then the offset moves on; a retry copy waits in its lane until it is due),
or to the dead-letter topic. An unreachable algo is waited for: it is not the message's fault and uses no retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from algorun.api.configs import RunnerConfig, RunnerInput, RunnerOutput
from algorun.bus import contract
from algorun.bus.types import Message
from algorun.runner import retry as retry_routing
from algorun.runner.executors.base import Executor
from algorun.runner.health import AlgoHealth
from algorun.runner.inline import Handover
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.model import MAX_BROKEN_RUNS, AlgoFailure, AlgoUnavailable, Output, Part, Request
from algorun.runner.outbox import Outbox
from algorun.runner.payloads import ClaimCheck, FileReference
from algorun.runner.progress import Progress
from algorun.runner.provenance import Inbound, read_inbound, retry_headers
from algorun.runner.sources import Source
from algorun.runner.staging import Staged, Staging
from algorun.runner.writes import Write, WriteKind, dead_letter_write, run_flag
from algorun.telemetry.logs import TRACE_ID as trace_var

log = logging.getLogger(__name__)

_EMBEDDED = contract.MessageDataType.EMBEDDED


class GeneralPath:
    """`handle(m)` runs one message (or stages it) and hands its writes to the outbox. `sleep(seconds)` is the
    lane's: only the message's lane waits out a backoff or a retry copy's due time."""

    def __init__(
        self,
        config: RunnerConfig,
        sources: dict[str, Source],
        staging: Staging,
        outbox: Outbox,
        progress: Progress,
        metrics: RunnerMetrics,
        *,
        executor: Executor,
        health: AlgoHealth,
        claim_check: ClaimCheck,
        concurrency: int,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._config = config
        self._sources = sources
        self._staging = staging
        self._outbox = outbox
        self._progress = progress
        self._metrics = metrics
        self._executor = executor
        self._health = health
        self._claim_check = claim_check
        self._sem = asyncio.Semaphore(concurrency)
        self._sleep = sleep
        self._component = config.full_name
        self._retry_topics = frozenset(config.retry.retry_topics.values())
        self._outputs: dict[str, RunnerOutput] = {o.name: o for o in config.outputs}

    async def handle(self, m: Message, handover: Handover | None = None) -> None:
        """`handover`: the inline path already ran the algo once (its input bytes and duration are counted): it
        failed (continue with the retry plan), or it succeeded (`Ran`: write its outputs)."""
        source_topic = m.topic
        inb: Inbound | None = None
        try:
            inb = read_inbound(m, self._retry_topics)
            source = self._sources.get(inb.source_topic)
            if source is None:
                raise AlgoFailure(f"no input of this algo reads topic {inb.source_topic!r}", "UnknownSource")
            if source.file_reference and inb.headers.get(contract.MESSAGE_DATA_TYPE) is None:
                inb.file_reference = True
            source_topic = inb.source_topic
        except AlgoFailure as e:
            inb = inb or read_inbound(m, frozenset())
            self._outbox.write([m], time.monotonic(), [self.dead_letter(m, inb, str(e), e.error_type)])
            return
        token = trace_var.set(inb.trace_id)  # log lines of this run carry its traceID
        try:
            if inb.due is not None:
                delay = inb.due - time.time()
                if delay > 0:
                    await self._sleep(delay)
            started = time.monotonic()
            algo_input = source.input
            try:
                part = await self._part(m, inb, algo_input)
            except AlgoFailure as e:
                self._metrics.input_bytes(algo_input.name, "failed", len(m.value), 0)
                self._outbox.write([m], started, [self.dead_letter(m, inb, str(e), e.error_type)])
                return
            if handover is None:
                self._metrics.input_bytes(algo_input.name, "ok", len(m.value), len(part.data))
            key = (algo_input.name, inb.trace_id)
            if not inb.run:
                self._staging.stage(key, Staged(m, part, source_topic, time.monotonic()))
                self._metrics.message(algo_input.name, "staged")
                self._progress.count(-1)  # finished by the run that uses it
                return
            staged = self._staging.take(key)
            parts = [s.part for s in staged]
            if m.value or not parts:
                parts.append(part)
            messages = [s.message for s in staged]
            request = Request(
                trace_id=inb.trace_id,
                input=algo_input,
                parts=parts,
                parameters=self._config.parameters,
                endpoint_params=inb.endpoint_params,
                headers=inb.headers,
            )
            writes = await self._attempt(m, inb, source, request, messages, handover)
            self._outbox.write([*messages, m], started, writes)
        finally:
            trace_var.reset(token)

    def dead_letter(self, m: Message, inb: Inbound, error: str, error_type: str, run: str | None = None) -> Write:
        return dead_letter_write(self._config.retry.dead_letter_topic, self._component, m, inb, error, error_type, run)

    def expire_staged(self, ttl: float) -> None:
        """Staged parts that waited more than `ttl` seconds for their run: dead-lettered, so a missing trigger
        cannot hold a partition's commits back forever."""
        for (input_name, trace_id), items in self._staging.expired(time.monotonic(), ttl):
            log.warning(
                "trace %s: %d staged parts on %s never got run=true; dead-lettered", trace_id, len(items), input_name
            )
            for s in items:
                inb = read_inbound(s.message, self._retry_topics)
                self._progress.count(1)
                self._outbox.write(
                    [s.message],
                    s.since,
                    [self.dead_letter(s.message, inb, "staged part never triggered (no run=true)", "StagingExpired")],
                )

    async def _part(self, m: Message, inb: Inbound, algo_input: RunnerInput) -> Part:
        data = m.value
        if inb.file_reference and data:
            data = await self._claim_check.get(FileReference.parse(data))
        content_type = inb.content_type or (algo_input.content_types[0] if algo_input.content_types else None)
        return Part(data, content_type, inb.file_name)

    async def _run_algo(self, request: Request) -> list[Output]:
        """One run; an unreachable algo is waited for (not the message's fault, no retry used), unless its
        connection keeps breaking while it stays reachable (AlgoUnavailable.broke)."""
        broken = 0
        while True:
            began = time.monotonic()
            try:
                async with self._sem:
                    return await self._executor.run(request)
            except AlgoUnavailable as e:
                if e.broke is not None:
                    broken += 1
                    if broken >= MAX_BROKEN_RUNS:
                        raise e.broke from e
                self._health.unavailable(str(e))
            finally:
                self._metrics.algo_duration.observe(time.monotonic() - began)
            await self._health.wait_after_unavailable()

    async def _attempt(
        self,
        m: Message,
        inb: Inbound,
        source: Source,
        request: Request,
        staged: list[Message],
        handover: Handover | None = None,
    ) -> list[Write]:
        """Run (or take the inline run's outcome), following the retry plan on failure. Uploading a claim-checked
        output is part of the run: a storage failure is retried and dead-lettered like the algo's own."""
        state = inb.state
        plan = source.plan
        name = request.input.name
        while True:
            try:
                if isinstance(handover, AlgoFailure):
                    failed, handover = handover, None
                    raise failed
                if handover is not None:
                    outputs, handover = handover.outputs, None
                else:
                    outputs = await self._run_algo(request)
                    self._metrics.message(name, "ok")  # an inline run counted its own
                return await self._output_writes(m, inb, outputs)
            except AlgoFailure as failure:
                self._metrics.algo_error.inc()
                error, error_type = str(failure), failure.error_type
                log.warning("run failed (%s): %s", error_type, error)
                decision = retry_routing.next_attempt(plan, state, time.time())
                if decision is None:
                    self._metrics.message(name, "dead_letter")
                    self._metrics.dead_letter(state.step_index if state.retry_num else None)
                    return [self.dead_letter(x, inb, error, error_type, run_flag(x, m)) for x in [*staged, m]]
                self._metrics.retry(decision.step.index, decision.retry_num)
                if plan.mode is retry_routing.Mode.IN_PLACE:
                    await self._sleep(max(0.0, decision.due - time.time()))
                    state = retry_routing.RetryState(decision.step.index, decision.retry_num)
                    continue
                self._metrics.message(name, "retry")
                topic = self._config.retry.retry_topics.get(decision.step.backoff)
                if topic is None:  # the config has no topic for this step: never drop, dead-letter instead
                    error = f"{error} (no retry topic for backoff {decision.step.backoff})"
                    return [self.dead_letter(x, inb, error, error_type, run_flag(x, m)) for x in [*staged, m]]
                return [
                    Write(
                        topic,
                        x.value,
                        contract.message_key(inb.trace_id),
                        contract.replace(
                            retry_headers(x, inb, decision, error, error_type, self._component),
                            {contract.RUN: run_flag(x, m)},
                        ),
                        "",
                        len(x.value),
                        WriteKind.RETRY,
                    )
                    for x in [*staged, m]
                ]

    async def _output_writes(self, m: Message, inb: Inbound, outputs: list[Output]) -> list[Write]:
        writes: list[Write] = []
        key = contract.message_key(inb.trace_id)
        offload_above = self._claim_check.offload_above
        for out in outputs:
            cfg = self._outputs.get(out.name)
            if cfg is None or cfg.topic is None:
                continue  # not piped anywhere
            data = out.payload()
            dtype = contract.MessageDataType(cfg.message_data_type.value)
            value = data
            if dtype is _EMBEDDED and offload_above is not None and len(data) > offload_above:
                dtype = contract.MessageDataType.FILE_REFERENCE  # claim-checked: too large to travel in Kafka
            if dtype is contract.MessageDataType.FILE_REFERENCE:
                value = (await self._claim_check.put(data, out.file_name)).to_json()
            headers = contract.output(
                m.headers,
                trace_id=inb.trace_id,
                data_type=dtype,
                content_type=out.content_type or cfg.content_type,
                file_name=out.file_name,
            )
            writes.append(Write(cfg.topic, value, key, headers, out.name, len(data), WriteKind.OUTPUT))
        return writes
