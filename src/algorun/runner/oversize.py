"""What replaces a write the broker refused as over its message size limit: writing it again would stall its
partition's commits forever, so the stream goes on with a reference or a dead letter instead."""

from __future__ import annotations

import logging

from algorun.bus import contract
from algorun.bus.errors import BusError, MessageTooLarge
from algorun.bus.kafka.record_size import kafka_record_size
from algorun.bus.types import Message
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.model import AlgoFailure
from algorun.runner.payloads import ClaimCheck
from algorun.runner.provenance import read_inbound
from algorun.runner.writes import Write, WriteKind, dead_letter_write, run_flag

log = logging.getLogger(__name__)

_FILE_REFERENCE = contract.MessageDataType.FILE_REFERENCE.value

Refused = list[tuple[Write, BusError]]


class Oversize:
    """What replaces writes the broker refused as over its message size limit.

    An output is claim-checked when storage is configured (its reference is written instead); otherwise, or if
    the upload fails, the run's inputs are dead-lettered with the error, once per run, and the stream goes on.
    A dead letter whose error headers made it too large goes without its value (`contract.value_omitted`)."""

    def __init__(
        self,
        claim_check: ClaimCheck,
        metrics: RunnerMetrics,
        *,
        dead_letter_topic: str,
        component: str,
        retry_topics: frozenset[str],
    ) -> None:
        self._claim_check = claim_check
        self._metrics = metrics
        self._dead_letter_topic = dead_letter_topic
        self._component = component
        self._retry_topics = retry_topics

    async def replace(self, failed: Refused, messages: list[Message]) -> list[Write]:
        """The writes to send again for `failed`: the same write when it was refused for another reason."""
        out: list[Write] = []
        dead_lettered = False
        for w, error in failed:
            if not isinstance(error, MessageTooLarge):
                out.append(w)
                continue
            if w.kind is WriteKind.DEAD_LETTER:  # its input fitted; its error headers did not
                log.error(
                    "a dead letter of %d bytes (a record of %d bytes with its key, headers and framing) is over the"
                    " broker's limit: written without its value",
                    len(w.value),
                    kafka_record_size(w.key, w.value, w.headers),
                )
                out.append(w._replace(value=b"", headers=contract.value_omitted(w.headers, w.value)))
                continue
            record = kafka_record_size(w.key, w.value, w.headers)
            reason = (
                f"output {w.output!r} of {len(w.value)} bytes is over the broker's message size limit"
                f" (a record of {record} bytes with its key, headers and framing; {error})"
            )
            if self._claim_check.offload_above is not None and w.kind is WriteKind.OUTPUT:
                try:
                    ref = await self._claim_check.put(w.value)
                except AlgoFailure as e:
                    reason = f"{reason}; claim check failed: {e}"
                else:
                    log.warning("%s: written as a FileReference instead", reason)
                    headers = contract.replace(w.headers, {contract.MESSAGE_DATA_TYPE: _FILE_REFERENCE})
                    out.append(w._replace(value=ref.to_json(), headers=headers))
                    continue
            if not dead_lettered:
                dead_lettered = True
                log.error("%s: its input is dead-lettered", reason)
                self._metrics.dead_letter(None)
                trigger = messages[-1]
                out.extend(
                    dead_letter_write(
                        self._dead_letter_topic,
                        self._component,
                        x,
                        read_inbound(x, self._retry_topics),
                        reason,
                        "MessageTooLarge",
                        run_flag(x, trigger),
                    )
                    for x in messages
                )
        return out
