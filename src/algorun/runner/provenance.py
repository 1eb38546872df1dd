"""What the runner reads from a consumed message and writes on the ones it produces. Pure (header contract in
`algorun.bus.contract`): tested without a broker.

Retry copies and dead letters carry where the message first came from (`errorTopic`, `errorPartition`,
`errorOffset`) and the last error, so a retried message finds its input again and a dead letter says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from algorun.bus import contract
from algorun.bus.types import Headers, Message
from algorun.runner.retry import Decision, RetryState


@dataclass(slots=True)
class Inbound:
    trace_id: str
    run: bool
    content_type: str | None
    endpoint_params: str | None
    file_name: str | None
    file_reference: bool
    state: RetryState
    due: float | None
    source_topic: str
    source_partition: int
    source_offset: int
    headers: dict[str, str]
    from_retry_topic: bool


def header_dict(headers: Headers) -> dict[str, str]:
    """Headers as text, the last value of a repeated name winning (Kafka's rule)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers}


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def read_inbound(m: Message, retry_topics: frozenset[str], declared_file_reference: bool = False) -> Inbound:
    """The contract headers of `m`. A message without `messageDataType` has the type its pipe declares."""
    hd = header_dict(m.headers)
    from_retry = m.topic in retry_topics
    dtype = hd.get(contract.MESSAGE_DATA_TYPE)
    file_ref = dtype == contract.MessageDataType.FILE_REFERENCE if dtype is not None else declared_file_reference
    ts = hd.get(contract.RETRY_TIMESTAMP)
    due = float(_int(ts, 0)) if ts is not None and from_retry else None
    source_topic = hd.get(contract.ERROR_TOPIC, m.topic) if from_retry else m.topic
    return Inbound(
        trace_id=hd.get(contract.TRACE_ID) or contract.new_trace_id(),
        run=contract.parse_run(hd.get(contract.RUN)),
        content_type=hd.get(contract.CONTENT_TYPE),
        endpoint_params=hd.get(contract.ENDPOINT_PARAMS),
        file_name=hd.get(contract.FILE_NAME),
        file_reference=file_ref,
        state=RetryState(_int(hd.get(contract.RETRY_STEP_INDEX), 0), _int(hd.get(contract.RETRY_NUM), 0)),
        due=due,
        source_topic=source_topic,
        source_partition=_int(hd.get(contract.ERROR_PARTITION), m.partition) if from_retry else m.partition,
        source_offset=_int(hd.get(contract.ERROR_OFFSET), m.offset) if from_retry else m.offset,
        headers=hd,
        from_retry_topic=from_retry,
    )


def _origin(inb: Inbound, error: str, error_type: str, component: str) -> dict[str, str | None]:
    return {
        contract.ERROR_TOPIC: inb.source_topic,
        contract.ERROR_PARTITION: str(inb.source_partition),
        contract.ERROR_OFFSET: str(inb.source_offset),
        contract.ERROR_MESSAGE: error[: contract.MAX_ERROR_MESSAGE],
        contract.ERROR_TYPE: error_type,
        contract.ERROR_COMPONENT: component,
    }


def retry_headers(m: Message, inb: Inbound, decision: Decision, error: str, error_type: str, component: str) -> Headers:
    """A copy for the step's retry topic: the input's headers, the new retry state, the origin and last error."""
    hs = contract.retry(
        m.headers,
        trace_id=inb.trace_id,
        step_index=decision.step.index,
        retry_num=decision.retry_num,
        due_unix_seconds=decision.due,
    )
    return contract.replace(hs, _origin(inb, error, error_type, component))


def dead_letter_headers(m: Message, inb: Inbound, error: str, error_type: str, component: str) -> Headers:
    """A dead letter: the input's headers (retry state kept: the attempts made), the error, where it came from."""
    return contract.dead_letter(
        m.headers,
        trace_id=inb.trace_id,
        error=error,
        error_type=error_type,
        source_topic=inb.source_topic,
        source_partition=inb.source_partition,
        source_offset=inb.source_offset,
        component=component,
    )


def replay_headers(headers: Headers, now: float) -> Headers:
    """A dead letter made new again: error and retry state removed, so it gets the full retry budget."""
    drop = {name: None for name in contract.ERROR_HEADERS if name != contract.ERROR_TOPIC}
    return contract.replace(
        headers,
        {**drop, contract.RETRY_STEP_INDEX: "0", contract.RETRY_NUM: "0", contract.RETRY_TIMESTAMP: str(int(now))},
    )
