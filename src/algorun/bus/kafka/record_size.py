"""The size of a Kafka record as the producer measures it, and the producer's default limit.

librdkafka refuses a record at produce time when its size is over `message.max.bytes`; the endpoint answers 413
before it logs or sends such a message, and the runner names the size when it replaces a refused write, so both
use the arithmetic the producer enforces (checked against the installed librdkafka in the tests).
"""

from __future__ import annotations

from algorun.bus.types import Headers

KAFKA_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default `message.max.bytes`: the largest record the producer accepts."""
RECORD_FRAMING_BYTES = 36
"""What librdkafka adds to a record's key, value and headers before comparing it with `message.max.bytes`: the
worst-case framing of a v2 record (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: length, attributes, timestamp and offset
deltas, key and value lengths, header count, each as its longest varint)."""


def kafka_record_size(key: bytes | None, value: bytes, headers: Headers) -> int:
    """The size librdkafka compares with `message.max.bytes` when a record is produced: value, key, each header's
    name and value with their varint lengths, and the record framing."""
    size = RECORD_FRAMING_BYTES + len(value) + len(key or b"")
    for name, data in headers:
        name_len = len(name.encode())
        size += _varint_size(name_len) + name_len + _varint_size(len(data)) + len(data)
    return size


def _varint_size(n: int) -> int:
    """Bytes of the non-negative `n` as a zig-zag varint (how Kafka records encode lengths)."""
    return max(1, ((2 * n).bit_length() + 6) // 7)
