"""A write the broker refused as too large: without storage its run's input is dead-lettered, and the error says
the size the producer compared with its limit (the Kafka record: value, key, headers and framing)."""

from __future__ import annotations

from algorun.bus import contract
from algorun.bus.errors import MessageTooLarge
from algorun.bus.kafka.record_size import kafka_record_size
from algorun.bus.types import Message
from algorun.runner.metrics import RunnerMetrics
from algorun.runner.oversize import Oversize
from algorun.runner.payloads import NoStorage
from algorun.runner.writes import Write, WriteKind
from tests.support.runner_configs import names, runner_config

DLQ = "dead-letters"


async def test_a_refused_output_dead_letters_its_input_naming_the_record_size() -> None:
    oversize = Oversize(
        NoStorage(),
        RunnerMetrics(runner_config(names("oversize"))),
        dead_letter_topic=DLQ,
        component="algo",
        retry_topics=frozenset(),
    )
    headers = [(contract.TRACE_ID, b"t-1"), ("x-big", b"h" * 300)]
    output = Write("out", b"v" * 2000, b"key", headers, "result", 2000, WriteKind.OUTPUT)
    message = Message("in", 0, 7, b"key", b"input", [(contract.TRACE_ID, b"t-1")], 0)

    replaced = await oversize.replace([(output, MessageTooLarge("too large"))], [message])

    assert [(w.topic, w.kind, w.value) for w in replaced] == [(DLQ, WriteKind.DEAD_LETTER, b"input")]
    error = dict(replaced[0].headers)[contract.ERROR_MESSAGE].decode()
    assert "output 'result' of 2000 bytes is over the broker's message size limit" in error
    assert f"a record of {kafka_record_size(b'key', output.value, headers)} bytes" in error
